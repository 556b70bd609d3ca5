using System.Security.Cryptography.X509Certificates;
using MeshClient.ConsulServer;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Tests.Consul;

/// <summary>
/// TLS to Consul with certificates made in the test: the custom CA is the only trust, and it never stands in for
/// the other checks (host name, dates, server usage, a CA that really is one).
/// </summary>
public sealed class ConsulTlsTests
{
    [Fact]
    public async Task CustomCa_AndClientCertificate_Discover_OverHttp2()
    {
        using var pki = TestPki.Create();
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync(new ConsulServerOptions
        {
            Certificate = TestPki.ForKestrel(pki.Server()),
            ClientCertificateAuthority = pki.Authority,
        });
        consul.Register(Services.On(a, "web"));
        var clientFile = pki.WritePem(pki.Client(), key: true, out var clientKeyFile);

        await using (var trusted = ConsulTestHost.Create(consul, s =>
        {
            s["Mesh:Consul:CaCertificateFile"] = pki.AuthorityFile;
            s["Mesh:Consul:ClientCertificateFile"] = clientFile;
            s["Mesh:Consul:ClientKeyFile"] = clientKeyFile;
        }))
        {
            Assert.Equal("a", await trusted.CreateClient().GetStringAsync("http://web/"));
            Assert.All(consul.Requests, r => Assert.Equal("HTTP/2", r.Protocol));
        }

        // The server requires a client certificate: without one the handshake fails, and that is logged.
        await using var noClientCertificate = ConsulTestHost.Create(consul, s => s["Mesh:Consul:CaCertificateFile"] = pki.AuthorityFile);
        await Assert.ThrowsAsync<UnknownServiceException>(() => noClientCertificate.CreateClient().GetAsync("http://web/"));
        Assert.Single(noClientCertificate.Events(300));
    }

    public static TheoryData<string> RefusedServers => ["system trust only", "self-signed", "expired", "not yet valid", "wrong host", "another CA", "issued by a leaf in the CA file"];

    [Theory]
    [MemberData(nameof(RefusedServers))]
    public async Task ServerCertificate_ThatTheCaFileDoesNotVouchFor_IsRefused_AndLogged(string kind)
    {
        using var pki = TestPki.Create();
        using var other = TestPki.Create("Another CA");
        var now = DateTimeOffset.UtcNow;
        var caFile = pki.AuthorityFile;
        X509Certificate2 certificate;
        switch (kind)
        {
            case "system trust only":
                certificate = pki.Server();
                caFile = null!;
                break;
            case "self-signed":
                certificate = pki.SelfSigned();
                break;
            case "expired":
                certificate = pki.Issue("CN=expired", TestPki.ServerAuth, ["127.0.0.1", "localhost"], now.AddDays(-10), now.AddDays(-1));
                break;
            case "not yet valid":
                certificate = pki.Issue("CN=future", TestPki.ServerAuth, ["127.0.0.1", "localhost"], now.AddDays(1), now.AddDays(10));
                break;
            case "wrong host":
                certificate = pki.Issue("CN=elsewhere", TestPki.ServerAuth, ["consul.elsewhere.example", "10.9.8.7"]);
                break;
            case "another CA":
                certificate = other.Server();
                break;
            default:
                // The file holds a leaf certificate (not a CA); a certificate "issued" by that leaf must not pass.
                var leaf = pki.Issue("CN=leaf", TestPki.ServerAuth, ["leaf.example"]);
                certificate = pki.Issue("CN=child", TestPki.ServerAuth, ["127.0.0.1", "localhost"], issuer: leaf);
                caFile = pki.WriteBundle(leaf);
                break;
        }

        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync(new ConsulServerOptions { Certificate = TestPki.ForKestrel(certificate) });
        consul.Register(Services.On(a, "web"));
        await using var mesh = ConsulTestHost.Create(consul, s =>
        {
            if (caFile is not null)
            {
                s["Mesh:Consul:CaCertificateFile"] = caFile;
            }
        });

        await Assert.ThrowsAsync<UnknownServiceException>(() => mesh.CreateClient().GetAsync("http://web/"));
        var error = Assert.Single(mesh.Events(300));
        Assert.Contains("SSL", error.Message, StringComparison.OrdinalIgnoreCase);

        // No request reached Consul's handlers: the handshake itself was refused.
        Assert.Empty(consul.Requests);
    }

    [Fact]
    public async Task CaBundle_WithSeveralAuthorities_TrustsEach_ButStillChecksTheHostName()
    {
        using var pki = TestPki.Create();
        using var other = TestPki.Create("Another CA");
        var bundle = pki.WriteBundle(other.Authority, pki.Authority);
        await using var a = await TestBackend.StartAsync("a");

        await using (var consul = await ConsulTestServer.StartAsync(new ConsulServerOptions { Certificate = TestPki.ForKestrel(pki.Server()) }))
        {
            consul.Register(Services.On(a, "web"));
            await using var mesh = ConsulTestHost.Create(consul, s => s["Mesh:Consul:CaCertificateFile"] = bundle);
            Assert.Equal("a", await mesh.CreateClient().GetStringAsync("http://web/"));
        }

        // Same CA, valid dates, but issued for another host: the bundle does not make it acceptable.
        await using (var consul = await ConsulTestServer.StartAsync(new ConsulServerOptions { Certificate = TestPki.ForKestrel(other.Server("consul.other.example")) }))
        {
            consul.Register(Services.On(a, "web"));
            await using var mesh = ConsulTestHost.Create(consul, s => s["Mesh:Consul:CaCertificateFile"] = bundle);
            await Assert.ThrowsAsync<UnknownServiceException>(() => mesh.CreateClient().GetAsync("http://web/"));
            Assert.Single(mesh.Events(300));
        }
    }

    /// <summary>
    /// The Consul TLS files rotate as Mesh:Tls files do: rewritten on disk, they are read again every
    /// Mesh:Tls:ReloadInterval (fake time here, so "before" and "after" are exact), and new connections use them.
    /// Before, the Consul client kept the certificates it was built with until a restart.
    /// </summary>
    [Fact]
    public async Task CaAndClientCertificateFiles_RewrittenOnDisk_AreUsedByNewConnections_AfterTheReloadInterval()
    {
        using var pki = TestPki.Create();
        using var old = TestPki.Create("Retired CA");
        var time = FakeTime.Create();
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync(new ConsulServerOptions
        {
            Certificate = TestPki.ForKestrel(pki.Server()),
            ClientCertificateAuthority = pki.Authority,
        });
        consul.Register(Services.On(a, "web"));

        // The files still hold the retired CA and a client certificate it issued: Consul's server is refused, and
        // Consul would refuse that client certificate.
        var caFile = old.WriteBundle(old.Authority);
        var clientFile = old.WritePem(old.Client(), key: true, out var keyFile);
        await using var mesh = ConsulTestHost.Create(consul, s =>
        {
            s["Mesh:Consul:CaCertificateFile"] = caFile;
            s["Mesh:Consul:ClientCertificateFile"] = clientFile;
            s["Mesh:Consul:ClientKeyFile"] = keyFile;
            s["Mesh:Tls:ReloadInterval"] = "00:00:30";
        }, services => services.AddSingleton<TimeProvider>(time));
        var client = mesh.CreateClient();
        await Assert.ThrowsAsync<UnknownServiceException>(() => client.GetAsync("http://web/"));
        Assert.Empty(consul.Requests);

        // The rotation lands on disk (the new CA, a certificate it issued, its key).
        var next = pki.Client("CN=rotated");
        File.WriteAllText(caFile, pki.Authority.ExportCertificatePem());
        File.WriteAllText(clientFile, next.ExportCertificatePem());
        using (var key = next.GetECDsaPrivateKey()!)
        {
            File.WriteAllText(keyFile!, key.ExportPkcs8PrivateKeyPem());
        }

        // Not before the interval: the watch retries (its backoff runs on the same clock) and is still refused.
        for (var i = 0; i < 29; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(5);
        }

        Assert.Empty(consul.Requests);
        Assert.Empty(mesh.Events(23));

        // At the interval the files are read again; the next connection to Consul uses them.
        time.Advance(TimeSpan.FromSeconds(1));
        var reloaded = Assert.Single(mesh.Events(23));
        Assert.Contains("Mesh:Consul", reloaded.Message, StringComparison.Ordinal);
        Assert.Contains(next.Thumbprint, reloaded.Message, StringComparison.Ordinal);
        await Eventually.TrueAsync(() =>
        {
            time.Advance(TimeSpan.FromSeconds(1));
            return consul.Requests.Count > 0;
        }, TimeSpan.FromSeconds(10), "the watch reaches Consul with the rotated certificates");
        await Eventually.TrueAsync(() =>
        {
            time.Advance(TimeSpan.FromSeconds(1));
            return client.GetAsync("http://web/").ContinueWith(t => t.IsCompletedSuccessfully && t.Result.IsSuccessStatusCode).Result;
        }, TimeSpan.FromSeconds(10), "web is discovered through Consul");
    }
}
