using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Resilience;
using MeshClient.Status;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Tests.Status;

public sealed class MeshStatusTests
{
    [Fact]
    public async Task Status_ListsServicesEndpointsWeightsAndStates()
    {
        await using var backends = await Backends.StartAsync(3);
        backends[2].Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", LoadBalancerNames.RoundRobin, (backends[0], 1), (backends[1], 2), (backends[2], 3)));
        var client = host.CreateClient();
        for (var i = 0; i < 30; i++)
        {
            (await client.GetAsync("http://catalog/")).Dispose();
        }

        var service = Assert.Single(host.Services.GetRequiredService<IMeshStatus>().GetServices());

        Assert.Equal("catalog", service.Name);
        Assert.Equal("RoundRobin", service.LoadBalancer);
        Assert.False(service.Panic);
        Assert.Equal([1, 2, 3], service.Endpoints.Select(e => e.Weight));
        Assert.Equal(["healthy", "healthy", "ejected"], service.Endpoints.Select(e => e.State));
        Assert.All(service.Endpoints, e => Assert.Equal(0, e.InFlight));
        Assert.All(service.Endpoints, e => Assert.NotNull(e.LatencyEstimate));
        Assert.Equal(5, service.Endpoints[2].Attempts);

        // What the status page shows besides.
        Assert.Equal("Mesh configuration (Mesh:Services)", service.DiscoverySource);
        Assert.NotNull(service.LastUpdated);
        Assert.Null(service.DiscoveryError);
        Assert.Equal(30, service.RetryBudget?.Requests);
        Assert.Null(service.Hedging); // it does not hedge
        Assert.Equal([1.0, 2.0, 3.0], service.Endpoints.Select(e => e.EffectiveWeight));
        Assert.Equal(service.Endpoints.Sum(e => e.Attempts), service.Endpoints.Sum(e => e.RequestsLastMinute)); // 30 calls, 5 of them retried
        Assert.Equal([0, 0, 5], service.Endpoints.Select(e => e.FailuresLastMinute));
        Assert.Null(service.Endpoints[0].EjectionTimeLeft);
        Assert.InRange(service.Endpoints[2].EjectionTimeLeft!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Status_ListsARoutedService_WithItsRoutesAndTheirLiveShares()
    {
        await using var backends = await Backends.StartAsync(1);
        var settings = MeshHost.ServiceSettings("catalog-v1", LoadBalancerNames.RoundRobin, (backends[0], 1));
        settings["Mesh:Services:catalog:Routes:0:Name"] = "api";
        settings["Mesh:Services:catalog:Routes:0:Match:PathPrefix"] = "/api";
        settings["Mesh:Services:catalog:Routes:0:Match:Method"] = "get";
        settings["Mesh:Services:catalog:Routes:0:Timeout"] = "00:00:02";
        settings["Mesh:Services:catalog:Routes:0:Backends:0:Service"] = "catalog-v1";
        settings["Mesh:Services:catalog:Routes:0:Backends:0:Weight"] = "3";
        settings["Mesh:Services:catalog:Routes:0:Backends:1:Service"] = "catalog-v9"; // known to nobody
        settings["Mesh:Services:catalog:Routes:1:Backends:0:Service"] = "catalog-v1";
        await using var host = MeshHost.Create(settings);
        (await host.CreateClient().GetAsync("http://catalog/api/items")).EnsureSuccessStatusCode();

        var services = host.Services.GetRequiredService<IMeshStatus>().GetServices();

        Assert.Equal(["catalog", "catalog-v1"], services.Select(s => s.Name)); // catalog-v9 has no endpoints to show
        var catalog = services[0];
        Assert.Empty(catalog.Endpoints);
        Assert.Equal(["api", "1"], catalog.Routes.Select(r => r.Name));
        Assert.Equal("GET, path prefix /api", catalog.Routes[0].Match);
        Assert.Equal(TimeSpan.FromSeconds(2), catalog.Routes[0].Timeout);
        Assert.Null(catalog.Routes[1].Match);
        Assert.Equal(
            [new MeshRouteBackendStatus("catalog-v1", 3, 100, "healthy"), new MeshRouteBackendStatus("catalog-v9", 1, 0, "down")],
            catalog.Routes[0].Backends);
        Assert.Equal([new MeshRouteBackendStatus("catalog-v1", 1, 100, "healthy")], catalog.Routes[1].Backends);
        Assert.Empty(services[1].Routes);
        Assert.Single(services[1].Endpoints);
    }

    [Fact]
    public async Task Status_ShowsARefusingEndpointAsUnreachable()
    {
        await using var backends = await Backends.StartAsync(3);
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", LoadBalancerNames.RoundRobin, backends.WithWeight(1)));
        await backends[1].DisposeAsync(); // its port now refuses connections
        var client = host.CreateClient();
        for (var i = 0; i < 9; i++)
        {
            (await client.GetAsync("http://catalog/")).Dispose();
        }

        var service = Assert.Single(host.Services.GetRequiredService<IMeshStatus>().GetServices());

        Assert.Equal(["healthy", "unreachable", "healthy"], service.Endpoints.Select(e => e.State));
        Assert.True(service.Endpoints[1].EjectionTimeLeft > TimeSpan.Zero);
        Assert.Equal(1, service.Endpoints[1].FailuresLastMinute);
    }

    [Fact]
    public async Task EndpointLeavingDiscovery_DropsItsStateAndEjectionTimer()
    {
        await using var backends = await Backends.StartAsync(4);
        backends[3].Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", LoadBalancerNames.RoundRobin, backends.WithWeight(1)));
        var client = host.CreateClient();
        for (var i = 0; i < 40; i++)
        {
            (await client.GetAsync("http://catalog/")).Dispose();
        }

        var table = host.Registry.GetTable("catalog");
        Assert.Contains(table.States, s => s.Status == EndpointStatus.Ejected);

        host.Configuration.Replace(MeshHost.ServiceSettings("catalog", LoadBalancerNames.RoundRobin, (backends[0], 1), (backends[1], 1)));
        await Poll.UntilAsync(() => table.States.Count == 2);

        Assert.All(table.States, s => Assert.Equal(EndpointStatus.Healthy, s.Status));
        Assert.Equal(2, table.Snapshot!.All.Length);
    }
}
