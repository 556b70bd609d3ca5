using MeshClient.Tests.Consul;
using Xunit.Abstractions;

namespace MeshClient.Tests.Kubernetes;

/// <summary>What the provider resolves, and how EndpointSlices become endpoints.</summary>
public sealed class KubernetesDiscoveryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ServiceNames_ResolveLikeClusterDns_InTheDefaultAndNamedNamespaces()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply("shop", Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1")));
        server.Apply("other", Slices.Http("catalog", "catalog-b", 8080, new PodEndpoint("catalog-2", "10.2.0.2")));
        await using var mesh = KubernetesTestHost.Create(server);
        try
        {
            Assert.Equal(["catalog-1"], (await mesh.EndpointsAsync("catalog")).Keys);
        }
        finally
        {
            foreach (var record in mesh.Logs.GetSnapshot())
            {
                output.WriteLine($"{record.Id} {record.Message} {record.Exception}");
            }
        }

        Assert.Equal("http://10.1.0.1:8080/", (await mesh.EndpointsAsync("catalog"))["catalog-1"]);
        Assert.Equal(["catalog-2"], (await mesh.EndpointsAsync("catalog.other")).Keys);
        Assert.Equal(["catalog-2"], (await mesh.EndpointsAsync("catalog.other.svc")).Keys);
        Assert.Equal(["catalog-2"], (await mesh.EndpointsAsync("catalog.other.svc.cluster.local")).Keys);
    }
}
