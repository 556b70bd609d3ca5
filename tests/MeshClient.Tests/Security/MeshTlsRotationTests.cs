using System.Collections.Concurrent;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using MeshClient.Configuration;
using MeshClient.Security;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Security;

/// <summary>
/// Certificate rotation of service-to-service mTLS (<c>Mesh:Tls</c>) without a restart or a configuration reload:
/// the files are rewritten on disk, the mesh polls them on its <see cref="TimeProvider"/> (fake here, so "before the
/// interval" and "after it" are exact), and new connections to real Kestrel backends that require a client
/// certificate show which certificate was presented. Every backend answers <c>Connection: close</c>, so every call
/// is a new TLS handshake (the backend's connection ids prove it).
/// </summary>
public sealed class MeshTlsRotationTests : IDisposable
{
    private const int Rejected = 22;
    private const int Reloaded = 23;
    private static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    private readonly TestPki _pki = TestPki.Create("Mesh CA");
    private readonly TestPki _next = TestPki.Create("Next Mesh CA");
    private readonly WorkloadFiles _files = new();
    private readonly FakeTimeProvider _time = FakeTime.Create();
    private readonly FakeLogCollector _logs = new();
    private readonly ConcurrentQueue<(string ConnectionId, string? ClientThumbprint)> _seen = new();

    [Fact]
    public async Task ClientCertificate_RewrittenOnDisk_IsPresentedByNewConnections_ExactlyWhenTheIntervalElapses()
    {
        var a = _pki.Client("CN=frontend-a");
        var b = _pki.Client("CN=frontend-b");
        _files.Write(a, _pki.Authority);
        await using var backend = await StartAsync(_pki.Server());
        var settings = Settings(backend);
        settings["Mesh:Tls:ReloadInterval"] = "00:00:30";
        await using var mesh = Mesh(settings, "SocketsHttpHandler");
        var http = mesh.CreateClient();

        Assert.Equal(a.Thumbprint, await CallAsync(http));
        _files.Write(b, _pki.Authority);

        // Not before the interval: every call is a new handshake, and it still presents A (no check per connection).
        _time.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(a.Thumbprint, await CallAsync(http));
        Assert.Equal(a.Thumbprint, await CallAsync(http));

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(b.Thumbprint, await CallAsync(http));
        Assert.Equal(b.Thumbprint, await CallAsync(http));

        Assert.Equal(5, _seen.Select(s => s.ConnectionId).Distinct().Count());
        var reloaded = Assert.Single(_logs.GetSnapshot(), r => r.Id.Id == Reloaded);
        Assert.Equal(LogLevel.Information, reloaded.Level);
        Assert.Contains("Mesh:Tls:", reloaded.Message, StringComparison.Ordinal);
        Assert.Contains("CN=frontend-b", reloaded.Message, StringComparison.Ordinal);
        Assert.Contains(b.Thumbprint, reloaded.Message, StringComparison.Ordinal);
        Assert.Contains(b.NotAfter.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ss", System.Globalization.CultureInfo.InvariantCulture), reloaded.Message, StringComparison.Ordinal);
        AssertNoKeyMaterialLogged(a, b);
    }

    [Fact]
    public async Task AnOpenConnection_KeepsItsCertificate_WhileNewConnectionsPresentTheRotatedOne()
    {
        var a = _pki.Client("CN=frontend-a");
        var b = _pki.Client("CN=frontend-b");
        _files.Write(a, _pki.Authority);
        var close = false;
        await using var backend = await StartAsync(_pki.Server(), () => Volatile.Read(ref close));
        await using var mesh = Mesh(Settings(backend), "SocketsHttpHandler");
        var http = mesh.CreateClient();

        Assert.Equal(a.Thumbprint, await CallAsync(http));
        _files.Write(b, _pki.Authority);
        _time.Advance(Interval);

        // The pooled connection opened with A carries the next call, still as A; the backend then closes it.
        Volatile.Write(ref close, true);
        Assert.Equal(a.Thumbprint, await CallAsync(http));
        Assert.Equal(b.Thumbprint, await CallAsync(http));

        var connections = _seen.Select(s => s.ConnectionId).ToArray();
        Assert.Equal(connections[0], connections[1]);
        Assert.NotEqual(connections[1], connections[2]);
    }

    public static TheoryData<string> Primaries => ["factory default", "SocketsHttpHandler"];

    [Theory]
    [MemberData(nameof(Primaries))]
    public async Task CaBundle_RewrittenOnDisk_ABackendOfTheNewCaIsRefusedBefore_AndAcceptedAfterTheInterval(string primary)
    {
        var client = _pki.Client("CN=frontend");
        _files.Write(client, _pki.Authority);
        await using var backend = await StartAsync(_next.Server());
        await using var mesh = Mesh(Settings(backend), primary);
        var http = mesh.CreateClient();

        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => CallAsync(http));
        Assert.IsType<AuthenticationException>(refused.InnerException);

        // The bundle during a CA rotation: the old root and the new one (text around the blocks, as some tools
        // write, is not taken for a truncation).
        File.WriteAllText(_files.CaFile, $"# mesh trust bundle\n{_pki.Authority.ExportCertificatePem()}\n{_next.Authority.ExportCertificatePem()}\n# end\n");
        _time.Advance(Interval - TimeSpan.FromSeconds(1));
        await Assert.ThrowsAsync<HttpRequestException>(() => CallAsync(http));

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(client.Thumbprint, await CallAsync(http));
        Assert.Contains("trust 2 CA certificate(s)", Assert.Single(_logs.GetSnapshot(), r => r.Id.Id == Reloaded).Message, StringComparison.Ordinal);
    }

    [UnixFact]
    public async Task KubernetesSecretVolume_AtomicDataSymlinkSwap_IsPickedUp()
    {
        // The layout of a Kubernetes secret volume: the files are symlinks through ..data, itself a symlink to a
        // timestamped directory; an update writes a new directory and renames a new ..data link over the old one.
        var a = _pki.Client("CN=frontend-a");
        var b = _pki.Client("CN=frontend-b");
        var volume = Directory.CreateTempSubdirectory("meshclient-secret-").FullName;
        try
        {
            var first = WriteGeneration(volume, "..2026_11_24_00_00_00.1", a);
            File.CreateSymbolicLink(Path.Combine(volume, "..data"), first);
            foreach (var name in new[] { "ca.crt", "tls.crt", "tls.key" })
            {
                File.CreateSymbolicLink(Path.Combine(volume, name), Path.Combine("..data", name));
            }

            await using var backend = await StartAsync(_pki.Server());
            var settings = Settings(backend);
            settings["Mesh:Tls:CaCertificateFile"] = Path.Combine(volume, "ca.crt");
            settings["Mesh:Tls:ClientCertificateFile"] = Path.Combine(volume, "tls.crt");
            settings["Mesh:Tls:ClientKeyFile"] = Path.Combine(volume, "tls.key");
            await using var mesh = Mesh(settings, "SocketsHttpHandler");
            var http = mesh.CreateClient();
            Assert.Equal(a.Thumbprint, await CallAsync(http));

            var second = WriteGeneration(volume, "..2026_11_24_01_00_00.2", b);
            var link = Path.Combine(volume, "..data_tmp");
            File.CreateSymbolicLink(link, second);
            Assert.Equal(0, Rename(link, Path.Combine(volume, "..data"))); // atomic; File.Move would follow the link
            Directory.Delete(first, recursive: true);
            Assert.Equal(second, new FileInfo(Path.Combine(volume, "..data")).LinkTarget);

            Assert.Equal(a.Thumbprint, await CallAsync(http));
            _time.Advance(Interval);
            Assert.Equal(b.Thumbprint, await CallAsync(http));
            Assert.DoesNotContain(_logs.GetSnapshot(), r => r.Level >= LogLevel.Warning);
        }
        finally
        {
            Directory.Delete(volume, recursive: true);
        }

        string WriteGeneration(string root, string name, X509Certificate2 client)
        {
            var directory = Directory.CreateDirectory(Path.Combine(root, name)).FullName;
            File.WriteAllText(Path.Combine(directory, "ca.crt"), _pki.Authority.ExportCertificatePem());
            File.WriteAllText(Path.Combine(directory, "tls.crt"), client.ExportCertificatePem());
            File.WriteAllText(Path.Combine(directory, "tls.key"), KeyPem(client));
            return directory;
        }
    }

    public static TheoryData<string> HalfWritten =>
    [
        "certificate of B, key still of A",
        "truncated certificate",
        "truncated key",
        "empty certificate",
        "truncated CA bundle",
        "key file missing",
    ];

    [Theory]
    [MemberData(nameof(HalfWritten))]
    public async Task HalfWrittenRotation_KeepsThePreviousCertificates_WarnsOnce_AndRecoversOnceTheFilesAreWhole(string kind)
    {
        var a = _pki.Client("CN=frontend-a");
        var b = _pki.Client("CN=frontend-b");
        _files.Write(a, _pki.Authority);
        await using var backend = await StartAsync(_pki.Server());
        await using var mesh = Mesh(Settings(backend), "SocketsHttpHandler");
        var http = mesh.CreateClient();
        Assert.Equal(a.Thumbprint, await CallAsync(http));

        switch (kind)
        {
            case "certificate of B, key still of A":
                File.WriteAllText(_files.CertificateFile, b.ExportCertificatePem());
                break;
            case "truncated certificate":
                File.WriteAllText(_files.CertificateFile, Half(b.ExportCertificatePem()));
                File.WriteAllText(_files.KeyFile, KeyPem(b));
                break;
            case "truncated key":
                File.WriteAllText(_files.CertificateFile, b.ExportCertificatePem());
                File.WriteAllText(_files.KeyFile, Half(KeyPem(b)));
                break;
            case "empty certificate":
                File.WriteAllText(_files.CertificateFile, string.Empty);
                break;
            case "truncated CA bundle":
                // The old root whole, the new one cut: trusting only the first would be a silent half-rotation.
                File.WriteAllText(_files.CaFile, _pki.Authority.ExportCertificatePem() + "\n" + Half(_next.Authority.ExportCertificatePem()));
                break;
            default:
                File.Delete(_files.KeyFile);
                break;
        }

        _time.Advance(Interval);
        Assert.Equal(a.Thumbprint, await CallAsync(http));
        _time.Advance(Interval);
        Assert.Equal(a.Thumbprint, await CallAsync(http));

        // One warning for the same unusable files, however many intervals pass; nothing reloaded.
        var warning = Assert.Single(_logs.GetSnapshot(), r => r.Id.Id == Rejected);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.StartsWith("Mesh:Tls: the certificate files changed on disk but cannot be used (", warning.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(_logs.GetSnapshot(), r => r.Id.Id == Reloaded);

        _files.Write(b, _pki.Authority, _next.Authority);
        _time.Advance(Interval);
        Assert.Equal(b.Thumbprint, await CallAsync(http));
        Assert.Single(_logs.GetSnapshot(), r => r.Id.Id == Reloaded);
        Assert.Single(_logs.GetSnapshot(), r => r.Id.Id == Rejected);
        AssertNoKeyMaterialLogged(a, b);
    }

    [Fact]
    public async Task ConfigurationReload_ReadsTheFilesAtOnce_WithoutWaitingForTheInterval()
    {
        var a = _pki.Client("CN=frontend-a");
        var b = _pki.Client("CN=frontend-b");
        _files.Write(a, _pki.Authority);
        await using var backend = await StartAsync(_pki.Server());
        var settings = Settings(backend);
        await using var mesh = Mesh(settings, "SocketsHttpHandler");
        var http = mesh.CreateClient();
        Assert.Equal(a.Thumbprint, await CallAsync(http));

        // Same TLS keys, another setting changed: the watcher of these files is kept and reads them now.
        _files.Write(b, _pki.Authority);
        settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:00.1";
        mesh.Configuration.Replace(settings);
        await Poll.UntilAsync(async () => await CallAsync(http) == b.Thumbprint);
        Assert.Single(_logs.GetSnapshot(), r => r.Id.Id == Reloaded);
    }

    [Fact]
    public async Task ServicesSharingTheGlobalFiles_RotateTogether_WithOneReadAndOneLog()
    {
        var a = _pki.Client("CN=frontend-a");
        var b = _pki.Client("CN=frontend-b");
        _files.Write(a, _pki.Authority);
        await using var backend = await StartAsync(_pki.Server("catalog.mesh.internal"));
        var settings = Settings(backend);
        settings["Mesh:Services:catalog:Tls:ServerName"] = "catalog.mesh.internal";
        await using var mesh = Mesh(settings, "SocketsHttpHandler");
        var http = mesh.CreateClient();
        Assert.Equal(a.Thumbprint, await CallAsync(http));

        _files.Write(b, _pki.Authority);
        _time.Advance(Interval);

        // catalog's own ServerName still applies to the rotated trust.
        Assert.Equal(b.Thumbprint, await CallAsync(http));
        Assert.Single(_logs.GetSnapshot(), r => r.Id.Id == Reloaded);
    }

    [Fact]
    public async Task HttpClientHandlerPrimary_ClientCertificateRotates_WithTheNextHandlerTheFactoryBuilds()
    {
        var a = _pki.Client("CN=frontend-a");
        var b = _pki.Client("CN=frontend-b");
        _files.Write(a, _pki.Authority);
        await using var backend = await StartAsync(_pki.Server());
        await using var mesh = Mesh(Settings(backend), "HttpClientHandler");
        Assert.Equal(a.Thumbprint, await CallAsync(mesh.CreateClient("first")));

        _files.Write(b, _pki.Authority);
        _time.Advance(Interval);

        // A handler built after the rotation (here another client name; in an application, the factory's next
        // handler after HandlerLifetime) presents B.
        Assert.Equal(b.Thumbprint, await CallAsync(mesh.CreateClient("second")));
    }

    [Fact]
    public async Task PollingTimer_ExistsOnlyWhileTlsFilesAreConfigured_AndIsDisposedWithTheHost()
    {
        var time = new CountingTimeProvider(_time);
        _files.Write(_pki.Client(), _pki.Authority);
        await using var backend = await StartAsync(_pki.Server());
        var mesh = Mesh(Settings(backend), "SocketsHttpHandler", time);
        await using (mesh)
        {
            await CallAsync(mesh.CreateClient());
            Assert.Equal(1, time.LiveOf(nameof(MeshClient.Security.MeshTls)));
        }

        Assert.Equal(0, time.LiveOf(nameof(MeshClient.Security.MeshTls)));

        // No TLS file (plain HTTP, or only a ServerName): no timer, so nothing is ever polled.
        await using var plain = await TestBackend.StartAsync("plain");
        foreach (var tls in new[] { null, "catalog.mesh.internal" })
        {
            var settings = MeshHost.ServiceSettings("catalog", null, (plain, 1));
            settings["Mesh:Tls:ServerName"] = tls;
            await using var noFiles = Mesh(settings, "SocketsHttpHandler", time);
            Assert.Equal("plain", await noFiles.CreateClient().GetStringAsync("http://catalog/"));
            Assert.Equal(0, time.LiveOf(nameof(MeshClient.Security.MeshTls)));
        }
    }

    public static TheoryData<string, string, string> InvalidIntervals => new()
    {
        { "Mesh:Tls:ReloadInterval", "00:00:00.5", "Mesh:Tls:ReloadInterval must be between 00:00:01 and 1.00:00:00, was 00:00:00.5000000." },
        { "Mesh:Tls:ReloadInterval", "1.00:00:01", "Mesh:Tls:ReloadInterval must be between 00:00:01 and 1.00:00:00, was 1.00:00:01." },
        { "Mesh:Tls:ReloadInterval", "-00:01:00", "Mesh:Tls:ReloadInterval must be between 00:00:01 and 1.00:00:00, was -00:01:00." },
        { "Mesh:Services:orders:Tls:ReloadInterval", "00:05:00", "Mesh:Services:orders:Tls:ReloadInterval cannot be set per service: set Mesh:Tls:ReloadInterval, which applies to the files of every service." },
    };

    [Theory]
    [MemberData(nameof(InvalidIntervals))]
    public async Task ReloadInterval_OutOfRangeOrPerService_FailsValidation_NamingTheKey(string key, string value, string expected)
    {
        await using var mesh = MeshHost.Create(new Dictionary<string, string?> { [key] = value });
        var error = Assert.Throws<OptionsValidationException>(() => mesh.Services.GetRequiredService<IOptionsMonitor<MeshOptions>>().CurrentValue);
        Assert.Equal(expected, Assert.Single(error.Failures));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("00:00:01")]
    [InlineData("1.00:00:00")]
    public async Task ReloadInterval_DefaultAndBounds_AreValid(string? value)
    {
        await using var mesh = MeshHost.Create(new Dictionary<string, string?> { ["Mesh:Tls:ReloadInterval"] = value });
        var options = mesh.Services.GetRequiredService<IOptionsMonitor<MeshOptions>>().CurrentValue;
        Assert.Equal(value is null ? null : TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture), options.Tls.ReloadInterval);
        Assert.Equal(TimeSpan.FromMinutes(1), MeshClient.Configuration.MeshTlsOptions.DefaultReloadInterval);
    }

    private async Task<string?> CallAsync(HttpClient http)
    {
        var before = _seen.Count;
        (await http.GetAsync("http://catalog/")).EnsureSuccessStatusCode();
        Assert.Equal(before + 1, _seen.Count);
        return _seen.Last().ClientThumbprint;
    }

    private Task<TestBackend> StartAsync(X509Certificate2 certificate, Func<bool>? close = null) =>
        TestBackend.StartHttpsAsync("backend", certificate, ClientCertificateMode.RequireCertificate, async context =>
        {
            _seen.Enqueue((context.Connection.Id, context.Connection.ClientCertificate?.Thumbprint));
            if (close?.Invoke() ?? true)
            {
                context.Response.Headers.Connection = "close";
            }

            await context.Response.WriteAsync("ok");
        });

    private Dictionary<string, string?> Settings(TestBackend backend) => new(StringComparer.OrdinalIgnoreCase)
    {
        ["Mesh:Services:catalog:Endpoints:0:Address"] = $"https://127.0.0.1:{backend.Port}/",
        ["Mesh:Tls:CaCertificateFile"] = _files.CaFile,
        ["Mesh:Tls:ClientCertificateFile"] = _files.CertificateFile,
        ["Mesh:Tls:ClientKeyFile"] = _files.KeyFile,

        // Refused handshakes are what the CA test expects: no retry, no ejection.
        ["Mesh:Resilience:MaxRetries"] = "0",
        ["Mesh:Resilience:ConsecutiveFailures"] = "0",
        ["Mesh:Resilience:FailurePercentageThreshold"] = "0",
    };

    private MeshHost Mesh(Dictionary<string, string?> settings, string primary, TimeProvider? time = null) =>
        MeshHost.Create(settings, services =>
        {
            services.AddSingleton(time ?? _time);
            services.AddLogging(b => b.SetMinimumLevel(LogLevel.Information).AddProvider(new FakeLoggerProvider(_logs)));
            switch (primary)
            {
                case "SocketsHttpHandler":
                    services.ConfigureHttpClientDefaults(b => b.ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler()));
                    break;
                case "HttpClientHandler":
                    services.ConfigureHttpClientDefaults(b => b.ConfigurePrimaryHttpMessageHandler(() => new HttpClientHandler()));
                    break;
            }
        });

    private void AssertNoKeyMaterialLogged(params X509Certificate2[] certificates)
    {
        foreach (var record in _logs.GetSnapshot())
        {
            var text = record.Message + record.Exception;
            Assert.DoesNotContain("PRIVATE KEY", text, StringComparison.Ordinal);
            foreach (var certificate in certificates)
            {
                var key = KeyPem(certificate).Split('\n')[1];
                Assert.DoesNotContain(key, text, StringComparison.Ordinal);
            }
        }
    }

    private static string KeyPem(X509Certificate2 certificate)
    {
        using var key = certificate.GetECDsaPrivateKey()!;
        return key.ExportPkcs8PrivateKeyPem();
    }

    /// <summary>rename(2), as Kubernetes' atomic writer swaps <c>..data</c>.</summary>
    private static int Rename(string from, string to) => Rename(NullTerminated(from), NullTerminated(to));

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int Rename(byte[] from, byte[] to);

    private static byte[] NullTerminated(string path) => System.Text.Encoding.UTF8.GetBytes(path + "\0");

    private static string Half(string text) => text[..(text.Length / 2)];

    public void Dispose()
    {
        _files.Dispose();
        _pki.Dispose();
        _next.Dispose();
    }

    /// <summary>The files a workload's certificate lives in, rewritten in place as cert-manager or a Vault agent does.</summary>
    private sealed class WorkloadFiles : IDisposable
    {
        private readonly string _directory = Directory.CreateTempSubdirectory("meshclient-workload-").FullName;

        public string CaFile => Path.Combine(_directory, "ca.crt");

        public string CertificateFile => Path.Combine(_directory, "tls.crt");

        public string KeyFile => Path.Combine(_directory, "tls.key");

        public void Write(X509Certificate2 client, params X509Certificate2[] authorities)
        {
            WriteCa(authorities);
            File.WriteAllText(CertificateFile, client.ExportCertificatePem());
            File.WriteAllText(KeyFile, KeyPem(client));
        }

        public void WriteCa(params X509Certificate2[] authorities) =>
            File.WriteAllText(CaFile, string.Concat(authorities.Select(c => c.ExportCertificatePem() + "\n")));

        public void Dispose() => Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>A fact that needs Unix symlinks and rename(2) (the Kubernetes secret volume layout).</summary>
public sealed class UnixFactAttribute : FactAttribute
{
    public UnixFactAttribute()
    {
        if (OperatingSystem.IsWindows())
        {
            Skip = "Kubernetes secret volumes are Linux symlink trees; rename(2) is called through libc.";
        }
    }
}
