using BenchmarkDotNet.Attributes;
using MeshClient.Model;
using MeshClient.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshClient.Benchmarks;

/// <summary>
/// The route choice of one call (<see cref="MeshRouter.RouteAsync"/>, what the call handler runs once per call): the
/// match of the service's routes in order, then the weighted backend with the health of each backend read from its
/// published snapshot. Cases: a service without routes (what every other service pays: the baseline); a header route
/// that matches first (one backend); the 90/10 split after a header route that does not match (two backends); and a
/// 50/50 split whose second backend is down (its weight redistributed). Target: no allocation.
/// </summary>
[MemoryDiagnoser]
public class RouteBenchmarks
{
    private ServiceProvider _services = null!;
    private MeshRouter _router = null!;
    private HttpRequestMessage _unrouted = null!;
    private HttpRequestMessage _testers = null!;
    private HttpRequestMessage _split = null!;
    private HttpRequestMessage _redistributed = null!;
    private MeshRequestContext _unroutedCall = null!;
    private MeshRequestContext _catalogCall = null!;
    private MeshRequestContext _ordersCall = null!;

    [GlobalSetup]
    public void Setup()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Routes:0:Name"] = "testers",
            ["Mesh:Services:catalog:Routes:0:Match:PathPrefix"] = "/api",
            ["Mesh:Services:catalog:Routes:0:Match:Headers:x-canary"] = "always",
            ["Mesh:Services:catalog:Routes:0:Backends:0:Service"] = "catalog-v2",
            ["Mesh:Services:catalog:Routes:1:Name"] = "split",
            ["Mesh:Services:catalog:Routes:1:Backends:0:Service"] = "catalog-v1",
            ["Mesh:Services:catalog:Routes:1:Backends:0:Weight"] = "90",
            ["Mesh:Services:catalog:Routes:1:Backends:1:Service"] = "catalog-v2",
            ["Mesh:Services:catalog:Routes:1:Backends:1:Weight"] = "10",
            ["Mesh:Services:catalog-v2:Endpoints:0:Address"] = "http://10.0.1.1:8080",
            ["Mesh:Services:orders:Routes:0:Backends:0:Service"] = "catalog-v1",
            ["Mesh:Services:orders:Routes:0:Backends:1:Service"] = "orders-v2", // known to nobody: down
        };
        for (var i = 0; i < 4; i++)
        {
            settings[$"Mesh:Services:catalog-v1:Endpoints:{i}:Address"] = $"http://10.0.0.{i + 1}:8080";
        }

        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
        services.AddMesh();
        _services = services.BuildServiceProvider();
        _router = _services.GetRequiredService<MeshRouter>();

        _unrouted = new HttpRequestMessage(HttpMethod.Get, "http://catalog-v1/api/items/42");
        _testers = new HttpRequestMessage(HttpMethod.Get, "http://catalog/api/items/42");
        _testers.Headers.Add("x-canary", "always");
        _split = new HttpRequestMessage(HttpMethod.Get, "http://catalog/api/items/42");
        _split.Headers.Add("x-canary", "no");
        _redistributed = new HttpRequestMessage(HttpMethod.Get, "http://orders/");
        _unroutedCall = new MeshRequestContext("catalog-v1");
        _catalogCall = new MeshRequestContext("catalog");
        _ordersCall = new MeshRequestContext("orders");

        // The first choices wait for the backends' first discovery answer (and log orders-v2's warning once).
        _router.RouteAsync(_split, _catalogCall, 0, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        _router.RouteAsync(_redistributed, _ordersCall, 0, CancellationToken.None).AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var request in new[] { _unrouted, _testers, _split, _redistributed })
        {
            request.Dispose();
        }

        _services.DisposeAsync().AsTask().GetAwaiter().GetResult(); // the resolver is IAsyncDisposable only
    }

    [Benchmark(Baseline = true)]
    public string NoRoutes() => Route(_unrouted, _unroutedCall);

    [Benchmark]
    public string HeaderRoute() => Route(_testers, _catalogCall);

    [Benchmark]
    public string SplitAfterAMiss() => Route(_split, _catalogCall);

    [Benchmark]
    public string SplitWithABackendDown() => Route(_redistributed, _ordersCall);

    private string Route(HttpRequestMessage request, MeshRequestContext call)
    {
        var choice = _router.RouteAsync(request, call, 0, CancellationToken.None);
        if (!choice.IsCompletedSuccessfully)
        {
            throw new InvalidOperationException("The route choice waited: the backends are not resolved.");
        }

        choice.GetAwaiter().GetResult();
        return call.Backend;
    }
}
