using BenchmarkDotNet.Attributes;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Benchmarks;

/// <summary>
/// The whole pick of one attempt as the balancing handler makes it: <see cref="EndpointPicker.PickAsync"/> (the
/// scheme's endpoints, the policy, admission) and <see cref="EndpointLease.Complete"/> (latency for the policy, the
/// outcome for outlier detection, then the in-flight count released), for a first attempt and for a retry that must
/// avoid the endpoint it tried. Target: no allocation.
/// </summary>
[MemoryDiagnoser]
public class PickerBenchmarks
{
    private ServiceProvider _services = null!;
    private ServiceTable _table = null!;
    private EndpointPicker _picker = null!;
    private MeshRequestContext _retry = null!;

    [Params(LoadBalancerNames.PeakEwma, LoadBalancerNames.LeastRequest, LoadBalancerNames.RoundRobin, LoadBalancerNames.Random)]
    public string Policy { get; set; } = LoadBalancerNames.PeakEwma;

    [GlobalSetup]
    public void Setup()
    {
        _services = BenchmarkHost.Build(s => s.AddMesh(o => o.LoadBalancer = Policy));
        var registry = _services.GetRequiredService<ServiceTableRegistry>();
        _table = registry.GetTable("catalog");
        _table.WaitForFirstResolutionAsync(CancellationToken.None).GetAwaiter().GetResult();
        _picker = registry.Picker;
        _retry = new MeshRequestContext("catalog");
        var first = Take(_picker.PickAsync(_table, _table.Snapshot!, "http", _retry, CancellationToken.None));
        first.Complete(AttemptOutcome.Failure);
    }

    /// <summary>The lease of a pick that completed synchronously, as every pick from a current snapshot does.</summary>
    private static EndpointLease Take(ValueTask<EndpointLease> pick) =>
        pick.IsCompletedSuccessfully ? pick.Result : pick.AsTask().GetAwaiter().GetResult();

    [GlobalCleanup]
    public void Cleanup() => _services.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [Benchmark(Baseline = true)]
    public int FirstAttempt()
    {
        var lease = Take(_picker.PickAsync(_table, _table.Snapshot!, "http", context: null, CancellationToken.None));
        lease.Complete(AttemptOutcome.Success);
        return lease.Endpoint.Weight;
    }

    [Benchmark]
    public int Retry()
    {
        // A call that has already tried endpoints: the pick scans for one it has not tried (after the first iterations
        // it has tried all four, the longest scan, and takes the policy's pick).
        var lease = Take(_picker.PickAsync(_table, _table.Snapshot!, "http", _retry, CancellationToken.None));
        lease.Complete(AttemptOutcome.Success);
        return lease.Endpoint.Weight;
    }
}
