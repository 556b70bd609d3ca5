using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using MeshClient.Configuration;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;

namespace MeshClient.Tests.Security;

/// <summary>
/// Service-to-service mTLS (<c>Mesh:Tls</c>) against real Kestrel backends over HTTPS on 127.0.0.1 that require a
/// client certificate, with certificates generated in the test.
/// </summary>
public sealed class MeshTlsTests : IDisposable
{
    private readonly TestPki _pki = TestPki.Create("Mesh CA");
    private readonly TestPki _other = TestPki.Create("Other CA");
    private readonly ConcurrentQueue<(string Backend, string? ClientThumbprint)> _seen = new();

    public static TheoryData<string> PrimaryHandlers => ["factory default", "SocketsHttpHandler", "HttpClientHandler"];

    [Theory]
    [MemberData(nameof(PrimaryHandlers))]
    public async Task WithTls_CallsSucceed_AndTheServerSeesTheClientCertificate(string primary)
    {
        var client = _pki.Client("CN=frontend");
        await using var backends = new Backends
        {
            await StartAsync("a", _pki.Server(), ClientCertificateMode.RequireCertificate),
            await StartAsync("b", _pki.Server(), ClientCertificateMode.RequireCertificate),
        };
        await using var mesh = Mesh(Settings(backends, Tls(client)), Primary(primary));

        var http = mesh.CreateClient();
        for (var i = 0; i < 4; i++)
        {
            (await http.GetAsync("http://catalog/")).EnsureSuccessStatusCode();
        }

        Assert.Equal(4, _seen.Count);
        Assert.All(_seen, s => Assert.Equal(client.Thumbprint, s.ClientThumbprint));
        Assert.Equal(["a", "b"], _seen.Select(s => s.Backend).Distinct().Order());
    }

    [Fact]
    public async Task WithoutTls_TheSameCallsFail()
    {
        await using var backends = new Backends { await StartAsync("a", _pki.Server(), ClientCertificateMode.RequireCertificate) };

        // No Mesh:Tls: the platform does not trust the mesh CA.
        await using (var mesh = Mesh(Settings(backends, [])))
        {
            var error = await Assert.ThrowsAsync<HttpRequestException>(() => mesh.CreateClient().GetAsync("http://catalog/"));
            Assert.IsType<AuthenticationException>(error.InnerException);
        }

        // The CA but no client certificate: the backend refuses the handshake.
        var settings = Settings(backends, []);
        settings["Mesh:Tls:CaCertificateFile"] = _pki.AuthorityFile;
        await using (var mesh = Mesh(settings))
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => mesh.CreateClient().GetAsync("http://catalog/"));
        }

        Assert.Empty(_seen);
    }

    public static TheoryData<string> RefusedBackends => ["another CA", "self-signed", "expired", "wrong host", "client-only usage"];

    [Theory]
    [MemberData(nameof(RefusedBackends))]
    public async Task Backend_WhoseCertificateTheMeshCaDoesNotVouchFor_IsRefused_BeforeTheRequestIsSent(string kind)
    {
        var now = DateTimeOffset.UtcNow;
        var certificate = kind switch
        {
            "another CA" => _other.Server(),
            "self-signed" => _pki.SelfSigned(),
            "expired" => _pki.Issue("CN=old", TestPki.ServerAuth, ["127.0.0.1"], now.AddDays(-3), now.AddDays(-1)),
            "wrong host" => _pki.Issue("CN=elsewhere", TestPki.ServerAuth, ["10.1.2.3", "elsewhere.example"]),
            _ => _pki.Issue("CN=127.0.0.1", TestPki.ClientAuth, ["127.0.0.1"]),
        };
        await using var backends = new Backends { await StartAsync("evil", certificate, ClientCertificateMode.RequireCertificate) };
        await using var mesh = Mesh(Settings(backends, Tls(_pki.Client())));

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => mesh.CreateClient().GetAsync("http://catalog/"));
        Assert.IsType<AuthenticationException>(error.InnerException);
        Assert.Empty(_seen);
    }

    [Fact]
    public async Task ServerName_IsTheIdentityChecked_WhenEndpointsAreAddresses()
    {
        await using var right = await StartAsync("right", _pki.Server("catalog.mesh.internal"), ClientCertificateMode.RequireCertificate);
        await using var wrong = await StartAsync("wrong", _pki.Server("orders.mesh.internal"), ClientCertificateMode.RequireCertificate);
        var tls = Tls(_pki.Client());
        tls["Mesh:Tls:ServerName"] = "catalog.mesh.internal";

        await using (var mesh = Mesh(Settings([right], tls)))
        {
            Assert.Equal("right", await mesh.CreateClient().GetStringAsync("http://catalog/"));
        }

        await using (var mesh = Mesh(Settings([wrong], tls)))
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => mesh.CreateClient().GetAsync("http://catalog/"));
        }
    }

    [Fact]
    public async Task PerServiceTls_OverridesTheGlobalOne_OnTheSameClient()
    {
        // catalog's endpoints are signed by the mesh CA, orders' by another CA that only orders trusts.
        await using var catalog = await StartAsync("catalog-1", _pki.Server(), ClientCertificateMode.RequireCertificate);
        await using var orders = await StartAsync("orders-1", _other.Server(), ClientCertificateMode.RequireCertificate);
        var ordersClient = _other.Client("CN=frontend-for-orders");
        var settings = Settings([catalog], Tls(_pki.Client()));
        settings["Mesh:Services:orders:Endpoints:0:Address"] = orders.Address.ToString().Replace("http:", "https:", StringComparison.Ordinal);
        settings["Mesh:Services:orders:Tls:CaCertificateFile"] = _other.AuthorityFile;
        settings["Mesh:Services:orders:Tls:ClientCertificateFile"] = _other.WritePem(ordersClient, key: true, out var keyFile);
        settings["Mesh:Services:orders:Tls:ClientKeyFile"] = keyFile;
        await using var mesh = Mesh(settings, Primary("SocketsHttpHandler"));
        var http = mesh.CreateClient();

        Assert.Equal("catalog-1", await http.GetStringAsync("http://catalog/"));
        Assert.Equal("orders-1", await http.GetStringAsync("http://orders/"));
        Assert.Equal(ordersClient.Thumbprint, _seen.Single(s => s.Backend == "orders-1").ClientThumbprint);

        // The global trust does not extend to orders' CA, nor orders' trust to the mesh CA.
        settings.Remove("Mesh:Services:orders:Tls:CaCertificateFile");
        await using var globalOnly = Mesh(settings, Primary("SocketsHttpHandler"));
        await Assert.ThrowsAsync<HttpRequestException>(() => globalOnly.CreateClient().GetAsync("http://orders/"));
    }

    [Fact]
    public async Task HostsOutsideTheMesh_KeepThePlatformValidation_AndTheApplicationsCallback_AndGetNoClientCertificate()
    {
        await using var meshBackend = await StartAsync("mesh", _pki.Server(), ClientCertificateMode.AllowCertificate);
        var externalCertificate = _other.Server();
        var externalThumbprint = externalCertificate.GetCertHashString();
        await using var external = await StartAsync("external", externalCertificate, ClientCertificateMode.AllowCertificate);
        var applicationCallbackCalls = 0;
        await using var mesh = Mesh(Settings([meshBackend], Tls(_pki.Client())), services =>
            services.ConfigureHttpClientDefaults(b => b.ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                SslOptions = new SslClientAuthenticationOptions
                {
                    // The application's own rule for its own hosts: it trusts the other CA's certificate by thumbprint.
                    RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                    {
                        Interlocked.Increment(ref applicationCallbackCalls);
                        return certificate?.GetCertHashString() == externalThumbprint;
                    },
                },
            })));
        var http = mesh.CreateClient();

        // An IP literal passes through the mesh: the application's callback decides, no client certificate.
        Assert.Equal("external", await http.GetStringAsync(Https(external)));
        Assert.Equal(1, applicationCallbackCalls);
        Assert.Null(_seen.Single(s => s.Backend == "external").ClientThumbprint);

        // The mesh endpoint (same client, same handler): the mesh trust decides and the certificate is presented.
        Assert.Equal("mesh", await http.GetStringAsync("http://catalog/"));
        Assert.Equal(1, applicationCallbackCalls);
        Assert.NotNull(_seen.Single(s => s.Backend == "mesh").ClientThumbprint);

        // And the mesh CA is not trusted for a host outside the mesh: the application's callback refuses it.
        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(Https(meshBackend).Replace("127.0.0.1", "localhost", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Validation_NamesTheKey_OfAMissingOrUnreadableFile_AndAKeyWithoutACertificate()
    {
        var notPem = Path.GetTempFileName();
        try
        {
            File.WriteAllText(notPem, "not a certificate");
            await using var mesh = Mesh(new Dictionary<string, string?>
            {
                ["Mesh:Tls:CaCertificateFile"] = "/nonexistent/ca.pem",
                ["Mesh:Tls:ClientKeyFile"] = notPem,
                ["Mesh:Services:orders:Tls:ClientCertificateFile"] = notPem,
                ["Mesh:Services:orders:Tls:ServerName"] = "https://orders",
            });
            var error = Assert.Throws<OptionsValidationException>(() => mesh.Services.GetRequiredService<IOptionsMonitor<MeshOptions>>().CurrentValue);
            Assert.Contains("Mesh:Tls:CaCertificateFile: the file '/nonexistent/ca.pem' does not exist.", error.Failures);
            Assert.Contains("Mesh:Tls:ClientKeyFile is set but Mesh:Tls:ClientCertificateFile is not.", error.Failures);
            Assert.Contains(error.Failures, f => f.StartsWith("Mesh:Services:orders:Tls:ClientCertificateFile: the file cannot be used", StringComparison.Ordinal));
            Assert.Contains("Mesh:Services:orders:Tls:ServerName 'https://orders' must be a DNS name such as 'catalog.mesh.internal'.", error.Failures);
        }
        finally
        {
            File.Delete(notPem);
        }
    }

    [Fact]
    public async Task APrimaryHandlerThatIsNeither_IsLeftAlone_WithAWarning()
    {
        await using var backends = new Backends { await StartAsync("a", _pki.Server(), ClientCertificateMode.NoCertificate) };
        var logs = new FakeLogCollector();
        await using var mesh = Mesh(Settings(backends, Tls(_pki.Client())), services =>
        {
            services.AddLogging(b => b.AddProvider(new FakeLoggerProvider(logs)));
            services.ConfigureHttpClientDefaults(b => b.ConfigurePrimaryHttpMessageHandler(() => new ForwardingHandler(new SocketsHttpHandler())));
        });

        await Assert.ThrowsAsync<HttpRequestException>(() => mesh.CreateClient().GetAsync("http://catalog/"));
        var warning = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 20);
        Assert.Contains("ForwardingHandler", warning.Message, StringComparison.Ordinal);
    }

    private Task<TestBackend> StartAsync(string name, X509Certificate2 certificate, ClientCertificateMode mode)
    {
        return TestBackend.StartHttpsAsync(name, certificate, mode, async context =>
        {
            _seen.Enqueue((name, context.Connection.ClientCertificate?.Thumbprint));
            await context.Response.WriteAsync(name);
        });
    }

    private static string Https(TestBackend backend) => $"https://127.0.0.1:{backend.Port}/";

    private Dictionary<string, string?> Tls(X509Certificate2 client)
    {
        var certificateFile = _pki.WritePem(client, key: true, out var keyFile);
        return new Dictionary<string, string?>
        {
            ["Mesh:Tls:CaCertificateFile"] = _pki.AuthorityFile,
            ["Mesh:Tls:ClientCertificateFile"] = certificateFile,
            ["Mesh:Tls:ClientKeyFile"] = keyFile,
        };
    }

    private static Dictionary<string, string?> Settings(IEnumerable<TestBackend> backends, Dictionary<string, string?> tls)
    {
        var settings = new Dictionary<string, string?>(tls, StringComparer.OrdinalIgnoreCase) { ["Mesh:LoadBalancer"] = "RoundRobin" };
        var i = 0;
        foreach (var backend in backends)
        {
            settings[$"Mesh:Services:catalog:Endpoints:{i++}:Address"] = Https(backend);
        }

        return settings;
    }

    private static Action<IServiceCollection>? Primary(string kind) => kind switch
    {
        "SocketsHttpHandler" => s => s.ConfigureHttpClientDefaults(b => b.ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler())),
        "HttpClientHandler" => s => s.ConfigureHttpClientDefaults(b => b.ConfigurePrimaryHttpMessageHandler(() => new HttpClientHandler())),
        _ => null,
    };

    private static MeshHost Mesh(Dictionary<string, string?> settings, Action<IServiceCollection>? configure = null) =>
        MeshHost.Create(settings, configure);

    public void Dispose()
    {
        _pki.Dispose();
        _other.Dispose();
    }

    private sealed class ForwardingHandler(HttpMessageHandler inner) : DelegatingHandler(inner);
}
