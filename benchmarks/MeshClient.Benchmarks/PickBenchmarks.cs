using BenchmarkDotNet.Attributes;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Model;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Benchmarks;

/// <summary>
/// The pick alone: one policy over one immutable snapshot. Target: no allocation, tens of nanoseconds. Weights are
/// 1–3 over 4 and 64 endpoints and 1–100 over 10,000 (a weight sum of 505,000: the round robin strides over the
/// prefix sums instead of reading a schedule). <c>MESH_BENCH_ENDPOINTS=10000</c> runs one endpoint count only.
/// </summary>
[MemoryDiagnoser]
public class PickBenchmarks
{
    private EndpointSnapshot _snapshot = null!;
    private LoadBalancingPolicy _policy = null!;

    [Params(LoadBalancerNames.PeakEwma, LoadBalancerNames.LeastRequest, LoadBalancerNames.RoundRobin, LoadBalancerNames.Random)]
    public string Policy { get; set; } = LoadBalancerNames.PeakEwma;

    [ParamsSource(nameof(EndpointCounts))]
    public int Endpoints { get; set; }

    public static IEnumerable<int> EndpointCounts => BenchmarkParams.EndpointCounts([4, 64, 10_000]);

    /// <summary>Whether one endpoint is in slow start (the snapshot then carries scaled weights).</summary>
    [Params(false, true)]
    public bool SlowStart { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _policy = LoadBalancingPolicy.Create(Policy, new MeshOptions(), TimeProvider.System);
        var entries = Enumerable.Range(0, Endpoints).Select(i =>
        {
            var features = new FeatureCollection();
            features.Set<IMeshEndpointFeature>(new MeshEndpointFeature("e" + i, BenchmarkParams.Weight(Endpoints, i), null));
            return EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri($"http://10.0.{i / 250}.{i % 250}:8080")), features), id => new EndpointState(id))!;
        }).ToArray();
        // In slow start the table scales every weight by 1000 and the ramping endpoint's by its factor (here 10%).
        var weights = SlowStart ? entries.Select((e, i) => e.Weight * (i == 0 ? 100L : 1000L)).ToArray() : null;
        _snapshot = new EndpointSnapshot("svc", entries, entries, _policy, panic: false, roundRobinStart: 0, weights);
    }

    [Benchmark]
    public object? Pick() => _policy.Pick(_snapshot, Randomizer.Shared, context: null);
}

/// <summary>
/// The pick with zone routing on: <see cref="ZoneView.Choose"/> (the balance's update check, the spill draw) and the
/// policy over the view it gave. Half the endpoints are in the caller's zone. <c>Spill</c> 0 is a zone at rest (every
/// pick from the zone's view); 0.5 a zone 3.75 times slower than the others (half the picks over all endpoints).
/// Target: no allocation. Run with <c>--filter *ZonePickBenchmarks*</c>.
/// </summary>
[MemoryDiagnoser]
public class ZonePickBenchmarks
{
    private EndpointSnapshot _snapshot = null!;
    private ZoneView _zones = null!;
    private LoadBalancingPolicy _policy = null!;

    [Params(LoadBalancerNames.PeakEwma, LoadBalancerNames.LeastRequest, LoadBalancerNames.RoundRobin, LoadBalancerNames.Random)]
    public string Policy { get; set; } = LoadBalancerNames.PeakEwma;

    [ParamsSource(nameof(EndpointCounts))]
    public int Endpoints { get; set; }

    public static IEnumerable<int> EndpointCounts => BenchmarkParams.EndpointCounts([4, 64, 10_000]);

    [Params(0.0, 0.5)]
    public double Spill { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var time = TimeProvider.System;
        _policy = LoadBalancingPolicy.Create(Policy, new MeshOptions(), time);
        var entries = Enumerable.Range(0, Endpoints).Select(i =>
        {
            var features = new FeatureCollection();
            features.Set<IMeshEndpointFeature>(new MeshEndpointFeature("e" + i, BenchmarkParams.Weight(Endpoints, i), i % 2 == 0 ? "zone-a" : "zone-b"));
            return EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri($"http://10.0.{i / 250}.{i % 250}:8080")), features), id => new EndpointState(id))!;
        }).ToArray();
        var settings = ZoneRoutingSettings.Resolve(new MeshOptions { Zone = "zone-a" }, null)!;
        var balance = new ZoneBalance("zone-a", time.TimestampFrequency);
        _snapshot = new EndpointSnapshot("svc", entries, entries, _policy, panic: false, roundRobinStart: 0, weights: null, new ZoneContext(settings, balance, default, time.GetTimestamp(), time.TimestampFrequency));
        _zones = _snapshot.Zones!;

        // The spill asked for: a latency ratio of 2.5 + Spill × 2.5, fed as samples over 20 s of timestamps (then the
        // balance holds it: no new samples come while the benchmark runs, so its updates keep the ratio).
        var ratio = settings.SpillStartRatio + (Spill * (settings.SpillFullRatio - settings.SpillStartRatio));
        var now = time.GetTimestamp() - (long)(20 * time.TimestampFrequency);
        for (var step = 0; step < 200; step++)
        {
            for (var i = 0; i < entries.Length; i++)
            {
                entries[i].State.AddZoneSample((i % 2 == 0 ? ratio : 1.0) * time.TimestampFrequency / 1000);
            }

            now += (long)(ZoneBalance.UpdateInterval.TotalSeconds * time.TimestampFrequency);
            balance.Update(now, _zones);
        }
    }

    [Benchmark]
    public object? Pick() => _policy.Pick(_zones.Choose(_snapshot, context: null, TimeProvider.System.GetTimestamp(), Randomizer.Shared), Randomizer.Shared, context: null);
}

/// <summary>Building one snapshot (what a discovery change, an ejection or a slow-start step costs, off the hot path).</summary>
[MemoryDiagnoser]
public class SnapshotBuildBenchmarks
{
    private EndpointEntry[] _entries = null!;
    private LoadBalancingPolicy _policy = null!;

    [Params(LoadBalancerNames.PeakEwma, LoadBalancerNames.RoundRobin)]
    public string Policy { get; set; } = LoadBalancerNames.RoundRobin;

    [ParamsSource(nameof(EndpointCounts))]
    public int Endpoints { get; set; }

    public static IEnumerable<int> EndpointCounts => BenchmarkParams.EndpointCounts([64, 10_000]);

    [GlobalSetup]
    public void Setup()
    {
        _policy = LoadBalancingPolicy.Create(Policy, new MeshOptions(), TimeProvider.System);
        _entries = Enumerable.Range(0, Endpoints).Select(i =>
        {
            var features = new FeatureCollection();
            features.Set<IMeshEndpointFeature>(new MeshEndpointFeature("e" + i, BenchmarkParams.Weight(Endpoints, i), null));
            return EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri($"http://10.{i / 65536}.{i / 256 % 256}.{i % 256}:8080")), features), id => new EndpointState(id))!;
        }).ToArray();
    }

    [Benchmark]
    public object Build() => new EndpointSnapshot("svc", _entries, _entries, _policy, panic: false, roundRobinStart: 0);
}

internal static class BenchmarkParams
{
    /// <summary>The endpoint counts to run: <c>MESH_BENCH_ENDPOINTS</c> (comma-separated) or <paramref name="defaults"/>.</summary>
    public static IEnumerable<int> EndpointCounts(int[] defaults) =>
        Environment.GetEnvironmentVariable("MESH_BENCH_ENDPOINTS") is { Length: > 0 } list
            ? list.Split(',').Select(x => int.Parse(x, System.Globalization.CultureInfo.InvariantCulture))
            : defaults;

    /// <summary>Mixed weights: 1–3 for small services, 1–100 from 10,000 endpoints on.</summary>
    public static int Weight(int endpoints, int i) => endpoints >= 10_000 ? 1 + (i % 100) : 1 + (i % 3);
}
