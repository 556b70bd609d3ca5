using MeshClient.Kubernetes;
using MeshClient.KubernetesServer;
using MeshClient.Tests.Consul;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Tests.Kubernetes;

/// <summary>In-cluster credentials: KUBERNETES_SERVICE_HOST/PORT, the cluster CA, the pod's namespace, a rotated token.</summary>
public sealed class KubernetesCredentialsTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task InCluster_ServiceAccount_CaNamespaceAndRotatedToken()
    {
        using var pki = TestPki.Create();
        await using var server = await KubernetesTestServer.CreateAsync(pki.Server("127.0.0.1"));
        server.Token = "token-generation-1";
        server.Apply("payments", Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1")));
        var account = Directory.CreateTempSubdirectory("mesh-k8s-sa-").FullName;
        try
        {
            File.Copy(pki.AuthorityFile, Path.Combine(account, "ca.crt"));
            File.WriteAllText(Path.Combine(account, "token"), "token-generation-1");
            File.WriteAllText(Path.Combine(account, "namespace"), "payments\n");
            await using var mesh = KubernetesTestHost.Create(
                server,
                s => s["Mesh:Kubernetes:KubeConfigPath"] = string.Empty,
                services => services.Configure<KubernetesOptions>(o =>
                {
                    o.ServiceAccountPath = account;
                    o.GetEnvironmentVariable = name => name switch
                    {
                        "KUBERNETES_SERVICE_HOST" => "127.0.0.1",
                        "KUBERNETES_SERVICE_PORT" => server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        _ => null,
                    };
                }));

            // The pod's namespace is the default; the API server is reached over https, trusting only the cluster CA.
            Assert.Equal(["catalog-1"], (await mesh.EndpointsAsync("catalog")).Keys);
            Assert.All(server.Requests, r => Assert.True(r.HadToken));

            // The kubelet rotates the token: the next request reads the new one, and the server accepts nothing else.
            // The old token stays valid until the new one is in use (as a real API server's does until it expires), so a
            // request already on its way when the file changes is not refused.
            server.PreviousToken = "token-generation-1";
            server.Token = "token-generation-2";
            File.WriteAllText(Path.Combine(account, "token"), "token-generation-2");
            server.DropWatches();
            server.Apply("payments", Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1"), new PodEndpoint("catalog-2", "10.1.0.2")));
            await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("catalog")).Count == 2, Limit, "the watch resumes with the rotated token");

            // Then only the new token is accepted: the next watch must send it.
            server.PreviousToken = null;
            server.DropWatches();
            server.Apply("payments", Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1"), new PodEndpoint("catalog-2", "10.1.0.2"), new PodEndpoint("catalog-3", "10.1.0.3")));
            await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("catalog")).Count == 3, Limit, "the watch resumes with the rotated token only");
            Assert.Empty(mesh.Events(402));
        }
        finally
        {
            Directory.Delete(account, recursive: true);
        }
    }

    [Fact]
    public async Task ATokenFileReadWhileRewrittenInPlace_KeepsTheLastToken_UntilTheNewOneIsThere()
    {
        // A token rewritten in place (truncated, then written) can be read empty in between: CI read it so while the
        // test rotated the token, sent an empty bearer token and was refused (401, warning 402).
        var account = Directory.CreateTempSubdirectory("mesh-k8s-sa-").FullName;
        try
        {
            var file = Path.Combine(account, "token");
            File.WriteAllText(file, "token-generation-1");
            var credentials = KubernetesCredentials.Load(new KubernetesOptions
            {
                ServiceAccountPath = account,
                GetEnvironmentVariable = name => name == "KUBERNETES_SERVICE_HOST" ? "127.0.0.1" : null,
            });
            Assert.Equal("token-generation-1", await credentials.GetTokenAsync(refresh: false, CancellationToken.None));

            File.WriteAllText(file, string.Empty); // the rewrite caught between truncation and write
            Assert.Equal("token-generation-1", await credentials.GetTokenAsync(refresh: false, CancellationToken.None));
            Assert.Equal("token-generation-1", await credentials.GetTokenAsync(refresh: true, CancellationToken.None));

            File.WriteAllText(file, "token-generation-2");
            Assert.Equal("token-generation-2", await credentials.GetTokenAsync(refresh: false, CancellationToken.None));
        }
        finally
        {
            Directory.Delete(account, recursive: true);
        }
    }

    [Fact]
    public async Task InCluster_ServerCertificateNotFromTheClusterCa_IsRefused()
    {
        using var pki = TestPki.Create();
        using var other = TestPki.Create("Another CA");
        await using var server = await KubernetesTestServer.CreateAsync(other.Server("127.0.0.1"));
        server.Apply("payments", Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1")));
        var account = Directory.CreateTempSubdirectory("mesh-k8s-sa-").FullName;
        try
        {
            File.Copy(pki.AuthorityFile, Path.Combine(account, "ca.crt"));
            File.WriteAllText(Path.Combine(account, "token"), "token");
            await using var mesh = KubernetesTestHost.Create(
                server,
                s => s["Mesh:Kubernetes:KubeConfigPath"] = string.Empty,
                services => services.Configure<KubernetesOptions>(o =>
                {
                    o.ServiceAccountPath = account;
                    o.GetEnvironmentVariable = name => name switch
                    {
                        "KUBERNETES_SERVICE_HOST" => "127.0.0.1",
                        "KUBERNETES_SERVICE_PORT" => server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        _ => null,
                    };
                }));
            Assert.Empty(await mesh.EndpointsAsync("catalog"));
            await Eventually.TrueAsync(() => mesh.Events(400).Count == 1, Limit, "the TLS failure is reported");
            Assert.Empty(server.Requests);
        }
        finally
        {
            Directory.Delete(account, recursive: true);
        }
    }
}
