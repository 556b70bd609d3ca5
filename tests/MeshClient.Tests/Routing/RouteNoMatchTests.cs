using MeshClient.Tests.Infrastructure;

namespace MeshClient.Tests.Routing;

/// <summary>A request that no route of its service matches fails fast, before anything is sent, naming the service.</summary>
public sealed class RouteNoMatchTests
{
    [Fact]
    public async Task NoRouteMatches_FailsWithNoMatchingRouteException_AndNoBackendSeesARequest()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Routes:0:Name"] = "api",
            ["Mesh:Services:catalog:Routes:0:Match:PathPrefix"] = "/api",
            ["Mesh:Services:catalog:Routes:0:Backends:0:Service"] = "catalog-v1",
            ["Mesh:Services:catalog:Routes:1:Name"] = "testers",
            ["Mesh:Services:catalog:Routes:1:Match:Headers:x-canary"] = "always",
            ["Mesh:Services:catalog:Routes:1:Backends:0:Service"] = "catalog-v2",
        };
        await using var mesh = await RoutedMesh.StartAsync(1, 1, settings);
        var client = mesh.Client;

        var ex = await Assert.ThrowsAsync<NoMatchingRouteException>(() => client.GetAsync("http://catalog/web/index.html?x=1"));

        Assert.Equal("catalog", ex.ServiceName);
        Assert.IsAssignableFrom<MeshException>(ex);
        Assert.Contains("'catalog'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("GET /web/index.html", ex.Message, StringComparison.Ordinal);
        Assert.Contains("api, testers", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("x=1", ex.Message, StringComparison.Ordinal);
        Assert.Equal((0, 0), mesh.Counts);

        // The routes that match still route.
        (await client.GetAsync("http://catalog/api/items")).EnsureSuccessStatusCode();
        using var canary = new HttpRequestMessage(HttpMethod.Get, "http://catalog/web");
        canary.Headers.Add("x-canary", "always");
        (await client.SendAsync(canary)).EnsureSuccessStatusCode();
        Assert.Equal((1, 1), mesh.Counts);
    }

    [Fact]
    public async Task AServiceWithoutRoutes_IsCalledAsBefore_EvenBesideARoutedOne()
    {
        await using var mesh = await RoutedMesh.StartAsync(1, 1, RoutedMesh.Split(1, 1));
        var client = mesh.Client;
        using var response = await client.GetAsync("http://catalog-v1/direct");
        response.EnsureSuccessStatusCode();
        Assert.Equal((1, 0), mesh.Counts);
    }
}
