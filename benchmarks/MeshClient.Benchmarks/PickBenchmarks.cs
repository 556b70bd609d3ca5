using BenchmarkDotNet.Attributes;
using MeshClient.Balancing;
using MeshClient.Discovery;
using MeshClient.Internal;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Benchmarks;

/// <summary>The pick alone: one policy over one immutable snapshot. Target: no allocation, tens of nanoseconds.</summary>
[MemoryDiagnoser]
public class PickBenchmarks
{
    private EndpointSnapshot _snapshot = null!;
    private LoadBalancingPolicy _policy = null!;

    [Params(LoadBalancerNames.PeakEwma, LoadBalancerNames.LeastRequest, LoadBalancerNames.RoundRobin, LoadBalancerNames.Random)]
    public string Policy { get; set; } = LoadBalancerNames.PeakEwma;

    [Params(4, 64)]
    public int Endpoints { get; set; }

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
            features.Set<IMeshEndpointFeature>(new MeshEndpointFeature("e" + i, 1 + (i % 3), null));
            return EndpointEntry.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri($"http://10.0.{i / 250}.{i % 250}:8080")), features), id => new EndpointState(id))!;
        }).ToArray();
        // In slow start the table scales every weight by 1000 and the ramping endpoint's by its factor (here 10%).
        var weights = SlowStart ? entries.Select((e, i) => e.Weight * (i == 0 ? 100L : 1000L)).ToArray() : null;
        _snapshot = new EndpointSnapshot("svc", entries, entries, _policy, panic: false, roundRobinStart: 0, weights);
    }

    [Benchmark]
    public object? Pick() => _policy.Pick(_snapshot, Randomizer.Shared, context: null);
}
