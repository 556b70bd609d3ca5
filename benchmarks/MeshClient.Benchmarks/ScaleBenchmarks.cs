using System.Diagnostics;
using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Model;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Benchmarks;

/// <summary>What the scale benchmarks share: 1,000 services × 20 endpoints built through the real DI and all used.</summary>
internal static class ScaleSetup
{
    public const int Services = 1000;
    public const int Endpoints = 20;

    /// <summary>The service whose endpoints change: one of the 1,000, served by a watch with its own change token.</summary>
    public static readonly string Watched = ScaleMesh.ServiceName(Services - 1);

    /// <summary>
    /// Builds the mesh: 999 services in static configuration and the last one through <see cref="WatchedDiscovery"/>,
    /// with <paramref name="extra"/> settings, every service used until each endpoint has had a call; then waits past
    /// the first refresh tick of every table (5 s), so that what runs in the background during the measurement is what
    /// runs while the services sit in memory.
    /// </summary>
    public static ScaleMesh Create(Action<Dictionary<string, string?>>? extra = null)
    {
        var settings = ScaleMesh.Settings(Services - 1, Endpoints);
        extra?.Invoke(settings);
        var mesh = ScaleMesh.Build(new MutableConfigurationProvider(settings), Services, Endpoints, watched: true);
        mesh.Discovery.Set(Watched, Addresses(Endpoints));
        mesh.UseEveryServiceAsync(Endpoints, everyEndpoint: true).GetAwaiter().GetResult();
        Thread.Sleep(ServiceTableRegistry.RefreshInterval + TimeSpan.FromSeconds(1));
        return mesh;
    }

    public static string[] Addresses(int count) => [.. Enumerable.Range(0, count).Select(j => ScaleMesh.Address(Services - 1, j))];

    /// <summary>Waits (spinning: the work runs on other threads, or already ran on this one) until <paramref name="done"/>.</summary>
    public static void SpinUntil(Func<bool> done)
    {
        var watch = Stopwatch.StartNew();
        var spin = default(SpinWait);
        while (!done())
        {
            spin.SpinOnce();
            if (watch.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new TimeoutException("The update was not published in 30 s.");
            }
        }
    }
}

/// <summary>
/// A discovery update to one service while 1,000 services × 20 endpoints are live: one endpoint added to or removed
/// from the 20 (alternately), from the change token firing to the new snapshot published. <see cref="OneService"/> is
/// a source with a change token per service (as the Consul and Kubernetes watches have): the table of that service
/// alone refreshes, rebuilds its entries and snapshot, and publishes. <see cref="ConfigurationReload"/> is the static
/// configuration: one key changes and the configuration reloads, so the options are bound and validated again and every
/// table refreshes and rebuilds its snapshot (the options changed), which is what a file-based configuration costs.
/// Every service is kept in use meanwhile (marked used each second, nothing sent).
/// </summary>
[MemoryDiagnoser]
public class ScaleUpdateBenchmarks
{
    private ScaleMesh _mesh = null!;
    private ServiceTable _watched = null!;
    private ServiceTable _configured = null!;
    private ServiceTable[] _tables = null!;
    private ServiceEndpoint[] _twenty = null!;
    private ServiceEndpoint[] _twentyOne = null!;
    private string _extraKey = null!;
    private bool _grow = true;
    private Timer? _inUse;

    [GlobalSetup]
    public void Setup()
    {
        _mesh = ScaleSetup.Create();
        _watched = _mesh.Registry.GetTable(ScaleSetup.Watched);
        _configured = _mesh.Registry.GetTable(ScaleMesh.ServiceName(500));
        _tables = _mesh.Tables();

        // Every service stays in use (as under traffic): each table's 5 s tick refreshes its discovery, which keeps the
        // resolver's watcher of the service (and its providers' change tokens) alive. An idle service's watcher is
        // dropped by the resolver after ~10–20 s, and a reload then reaches its table only when it is used again.
        _inUse = new Timer(static s => Array.ForEach((ServiceTable[])s!, static t => t.MarkUsed()), _tables, TimeSpan.Zero, TimeSpan.FromSeconds(1));
        Thread.Sleep(ServiceTableRegistry.RefreshInterval + TimeSpan.FromSeconds(1));
        _twentyOne = [.. ScaleSetup.Addresses(ScaleSetup.Endpoints + 1).Select(Endpoint)];
        _twenty = _twentyOne[..^1];
        _extraKey = "Mesh:Services:" + ScaleMesh.ServiceName(500) + ":Endpoints:" + ScaleSetup.Endpoints.ToString(CultureInfo.InvariantCulture) + ":Address";
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _inUse?.Dispose();
        _mesh.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    private static ServiceEndpoint Endpoint(string address)
    {
        // Built once, as a watch builds them when its source answers: the provider's cost, not the mesh's.
        var features = new FeatureCollection();
        features.Set<IMeshEndpointFeature>(new MeshEndpointFeature(address, 1, null));
        return ServiceEndpoint.Create(new UriEndPoint(new Uri(address)), features);
    }

    [Benchmark]
    public int OneService()
    {
        var count = _grow ? ScaleSetup.Endpoints + 1 : ScaleSetup.Endpoints;
        _mesh.Discovery.Set(ScaleSetup.Watched, _grow ? _twentyOne : _twenty);
        _grow = !_grow;
        ScaleSetup.SpinUntil(() => _watched.Snapshot!.All.Length == count);
        return count;
    }

    [Benchmark]
    public int ConfigurationReload()
    {
        var count = _grow ? ScaleSetup.Endpoints + 1 : ScaleSetup.Endpoints;
        if (_grow)
        {
            _mesh.Configuration.SetKey(_extraKey, ScaleMesh.Address(500, ScaleSetup.Endpoints));
        }
        else
        {
            _mesh.Configuration.RemoveKey(_extraKey);
        }

        _grow = !_grow;
        var built = SnapshotsBuilt();
        _mesh.Configuration.Reload();

        // Done when the changed service shows it and every table has published its snapshot for the new options.
        ScaleSetup.SpinUntil(() => _configured.Snapshot!.All.Length == count && SnapshotsBuilt() >= built + _tables.Length);
        return count;
    }

    private long SnapshotsBuilt()
    {
        long built = 0;
        foreach (var table in _tables)
        {
            built += table.SnapshotsBuilt;
        }

        return built;
    }
}

/// <summary>
/// The whole pick (<see cref="EndpointPicker.PickAsync"/> + <see cref="EndpointLease.Complete"/>) of a first attempt to
/// a service of 10,000 endpoints weighted 1–100, built through the DI from configuration, while 1,000 other services ×
/// 20 endpoints are live in the same mesh. Target: no allocation.
/// </summary>
[MemoryDiagnoser]
public class ScalePickBenchmarks
{
    private const string Big = "big";
    private ScaleMesh _mesh = null!;
    private ServiceTable _table = null!;
    private EndpointPicker _picker = null!;

    [Params(LoadBalancerNames.PeakEwma, LoadBalancerNames.LeastRequest, LoadBalancerNames.RoundRobin, LoadBalancerNames.Random)]
    public string Policy { get; set; } = LoadBalancerNames.PeakEwma;

    [GlobalSetup]
    public void Setup()
    {
        _mesh = ScaleSetup.Create(settings =>
        {
            settings["Mesh:Services:" + Big + ":LoadBalancer"] = Policy;
            for (var i = 0; i < 10_000; i++)
            {
                var prefix = "Mesh:Services:" + Big + ":Endpoints:" + i.ToString(CultureInfo.InvariantCulture);
                settings[prefix + ":Address"] = string.Create(CultureInfo.InvariantCulture, $"http://10.{100 + (i / 65536)}.{i / 256 % 256}.{i % 256}:8080");
                settings[prefix + ":Weight"] = BenchmarkParams.Weight(10_000, i).ToString(CultureInfo.InvariantCulture);
            }
        });
        _table = _mesh.Registry.GetTable(Big);
        _table.WaitForFirstResolutionAsync(CancellationToken.None).GetAwaiter().GetResult();
        _picker = _mesh.Registry.Picker;
    }

    [GlobalCleanup]
    public void Cleanup() => _mesh.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [Benchmark]
    public int FirstAttempt()
    {
        var pick = _picker.PickAsync(_table, _table.Snapshot!, "http", context: null, CancellationToken.None);
        var lease = pick.IsCompletedSuccessfully ? pick.Result : pick.AsTask().GetAwaiter().GetResult();
        lease.Complete(AttemptOutcome.Success);
        return lease.Endpoint.Weight;
    }
}
