using BenchmarkDotNet.Attributes;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Model;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Benchmarks;

/// <summary>
/// Issue 18's load signals on the hot path: a <c>WeightedRoundRobin</c> pick over a snapshot whose weights came from the
/// endpoints' load reports (against the plain round robin it shares its pick with), and, off the pick, the weights'
/// computation and the snapshot rebuild that publishes them every update period. Target: 0 B per pick.
/// </summary>
[MemoryDiagnoser]
public class WeightedRoundRobinBenchmarks
{
    private EndpointSnapshot _snapshot = null!;
    private LoadBalancingPolicy _policy = null!;
    private EndpointEntry[] _entries = null!;
    private WeightedRoundRobinPolicy _weighted = null!;

    [Params(LoadBalancerNames.WeightedRoundRobin, LoadBalancerNames.RoundRobin)]
    public string Policy { get; set; } = LoadBalancerNames.WeightedRoundRobin;

    [Params(4, 64)]
    public int Endpoints { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var options = new MeshOptions();
        options.WeightedRoundRobin.BlackoutPeriod = TimeSpan.Zero;
        _policy = LoadBalancingPolicy.Create(Policy, options, TimeProvider.System);
        _weighted = new WeightedRoundRobinPolicy(options.WeightedRoundRobin, null, TimeProvider.System);
        _entries = Enumerable.Range(0, Endpoints).Select(i =>
        {
            var features = new FeatureCollection();
            features.Set<IMeshEndpointFeature>(new MeshEndpointFeature("e" + i, 1, null));
            var entry = EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri($"http://10.0.0.{i + 1}:8080")), features), id => new EndpointState(id))!;

            // Utilization 0.3 to 0.9 at 100 requests/s: weights 333 down to 111.
            entry.State.GetOrCreateLoadReport().Record(new OrcaLoadReport(0.3 + (0.6 * i / Endpoints), 0, 0, 100, 0), TimeProvider.System.GetTimestamp());
            return entry;
        }).ToArray();
        var weights = _policy is WeightedRoundRobinPolicy weighted ? weighted.Weights(_entries, null) : null;
        _snapshot = new EndpointSnapshot("svc", _entries, _entries, _policy, panic: false, roundRobinStart: 0, weights);
    }

    [Benchmark]
    public object? Pick() => _policy.Pick(_snapshot, Randomizer.Shared, context: null);

    /// <summary>What each update period costs, off the request path: the weights from the reports, and the snapshot with them.</summary>
    [Benchmark]
    public object WeightsAndSnapshot() =>
        new EndpointSnapshot("svc", _entries, _entries, _weighted, panic: false, roundRobinStart: 0, _weighted.Weights(_entries, null));
}

/// <summary>
/// Reading an endpoint's ORCA report from a response (every response of a <c>WeightedRoundRobin</c> service), in each
/// form, and keeping it in the endpoint's record. Target: 0 B (the header's string is System.Net.Http's).
/// </summary>
[MemoryDiagnoser]
public class OrcaReportBenchmarks
{
    private readonly EndpointLoadReport _record = new();
    private HttpResponseMessage _response = null!;

    [Params("TEXT", "JSON", "BIN")]
    public string Form { get; set; } = "TEXT";

    [GlobalSetup]
    public void Setup()
    {
        _response = new HttpResponseMessage();
        _response.Headers.TryAddWithoutValidation(OrcaLoadReport.HeaderName, Form switch
        {
            "TEXT" => "TEXT application_utilization=0.4, rps_fractional=100, eps=0.5, named_metrics.kv_cache=0.7",
            "JSON" => "JSON {\"application_utilization\": 0.4, \"rps_fractional\": 100, \"eps\": 0.5, \"named_metrics\": {\"kv_cache\": 0.7}}",
            _ => "BIN SZqZmZmZmdk/MQAAAAAAAFlAOQAAAAAAAOA/",
        });
    }

    [GlobalCleanup]
    public void Cleanup() => _response.Dispose();

    [Benchmark]
    public bool ReadAndRecord() =>
        OrcaLoadReport.TryRead(_response.Headers, out var report) && _record.Record(report, TimeProvider.System.GetTimestamp());
}
