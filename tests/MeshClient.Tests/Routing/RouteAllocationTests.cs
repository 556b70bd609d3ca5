using MeshClient.Model;
using MeshClient.Routing;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Tests.Routing;

/// <summary>
/// The route choice of a call (match, then the weighted backend with health redistribution) allocates nothing once the
/// backends' snapshots are published. Counted bytes, not time: the benchmark (RouteBenchmarks) measures the time.
/// </summary>
public sealed class RouteAllocationTests
{
    [Fact]
    public async Task RouteChoice_AllocatesNothing_WithEveryBackendUp_AndWithOneDown()
    {
        await using var host = MeshHost.Create(new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog-v1:Endpoints:0:Address"] = "http://10.0.0.1:8080",
            ["Mesh:Services:catalog-v1:Endpoints:1:Address"] = "http://10.0.0.2:8080",
            ["Mesh:Services:catalog-v2:Endpoints:0:Address"] = "http://10.0.0.3:8080",
            ["Mesh:Services:catalog:Routes:0:Name"] = "testers",
            ["Mesh:Services:catalog:Routes:0:Match:PathPrefix"] = "/api",
            ["Mesh:Services:catalog:Routes:0:Match:Headers:x-canary"] = "always",
            ["Mesh:Services:catalog:Routes:0:Backends:0:Service"] = "catalog-v2",
            ["Mesh:Services:catalog:Routes:1:Name"] = "split",
            ["Mesh:Services:catalog:Routes:1:Backends:0:Service"] = "catalog-v1",
            ["Mesh:Services:catalog:Routes:1:Backends:0:Weight"] = "90",
            ["Mesh:Services:catalog:Routes:1:Backends:1:Service"] = "catalog-v2",
            ["Mesh:Services:catalog:Routes:1:Backends:1:Weight"] = "10",
            ["Mesh:Services:orders:Routes:0:Backends:0:Service"] = "orders-v1",
            ["Mesh:Services:orders:Routes:0:Backends:1:Service"] = "orders-v2", // nobody knows it: down
            ["Mesh:Services:orders-v1:Endpoints:0:Address"] = "http://10.0.0.4:8080",
        });
        var router = host.Services.GetRequiredService<MeshRouter>();
        using var request = new HttpRequestMessage(HttpMethod.Get, "http://catalog/api/items/42");
        request.Headers.Add("x-canary", "no");
        using var orders = new HttpRequestMessage(HttpMethod.Get, "http://orders/");
        var context = new MeshRequestContext("catalog");
        var ordersContext = new MeshRequestContext("orders");

        // The first choices create the backends' tables and wait for discovery's first answer.
        await router.RouteAsync(request, context, 0, CancellationToken.None);
        await router.RouteAsync(orders, ordersContext, 0, CancellationToken.None);
        await Poll.UntilAsync(() => host.Registry.Tables.Count(t => t.Snapshot is not null) == 3
            && host.Registry.GetTable("orders-v2").Resolution == MeshClient.Balancing.ServiceResolution.Unknown);
        for (var i = 0; i < 100; i++)
        {
            Route(router, request, context);
            Route(router, orders, ordersContext);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            Route(router, request, context);
        }

        var split = GC.GetAllocatedBytesForCurrentThread() - before;
        before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            Route(router, orders, ordersContext);
        }

        var redistributed = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal("split", context.Route);
        Assert.Equal("orders-v1", ordersContext.Backend); // orders-v2's weight went to orders-v1: every call
        Assert.Equal(0, split);
        Assert.Equal(0, redistributed);
    }

    /// <summary>One route choice, which completes at once once the backends are known.</summary>
    private static void Route(MeshRouter router, HttpRequestMessage request, MeshRequestContext context)
    {
        var choice = router.RouteAsync(request, context, 0, CancellationToken.None);
        if (!choice.IsCompletedSuccessfully)
        {
            throw new InvalidOperationException("The route choice waited.");
        }

        choice.GetAwaiter().GetResult();
    }
}
