using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;

namespace MeshClient.Tests.Grpc;

/// <summary>
/// Issue 14, items 2 and 5, on a fake clock: the lease of a gRPC call whose body is still open. The time to its response
/// headers is the latency sample; its length is never one; it stays open on its endpoint (not as load for the picks)
/// until its body ends, when the trailers' outcome is recorded once.
/// </summary>
public sealed class GrpcLeaseTests
{
    [Fact]
    public async Task AStreamOpenForAMinute_IsSampledAtItsHeaders_AndItsLateFailureCountsOnce()
    {
        var time = FakeTime.Create();
        var (host, _) = StubEndpoints.CreateHost(time, settings => settings["Mesh:Services:catalog:LoadBalancer"] = LoadBalancerNames.PeakEwma);
        await using var __ = host;
        (await host.CreateClient().GetAsync("http://catalog/")).Dispose();
        var table = host.Registry.GetTable("catalog");
        var snapshot = table.Snapshot!;
        var endpoint = snapshot.All.Single(e => e.Address.Contains("10.0.0.4", StringComparison.Ordinal));
        var state = endpoint.State;

        // The endpoint's first answers carry connection set-up and are no samples (EndpointState.IsWarmUpAnswer).
        for (var i = 0; i < EndpointState.WarmUpAnswers; i++)
        {
            Lease(table, snapshot, endpoint, time).Complete(AttemptOutcome.Success);
        }

        var stream = Lease(table, snapshot, endpoint, time);
        Assert.Equal(1, state.InFlight);
        time.Advance(TimeSpan.FromMilliseconds(2));
        var answeredAt = stream.Answered();
        Assert.Equal(0, state.InFlight);   // no longer load for the picks …
        Assert.Equal(1, state.OpenStreams); // … but open on its endpoint

        time.Advance(TimeSpan.FromMinutes(1));
        stream.CompleteStream(AttemptOutcome.Success, TimeSpan.Zero, answeredAt);
        Assert.Equal(0, state.OpenStreams);
        Assert.Equal(0, state.InFlight);
        Assert.Equal(TimeSpan.FromMilliseconds(2), Estimate(state, time)); // the time to the headers, not the minute

        // UNAVAILABLE in the trailers of a stream that stayed open a minute: one failure, sampled at the failure
        // penalty (1 s by default), not at the minute.
        var failing = Lease(table, snapshot, endpoint, time);
        time.Advance(TimeSpan.FromMilliseconds(2));
        answeredAt = failing.Answered();
        time.Advance(TimeSpan.FromMinutes(1));
        failing.CompleteStream(AttemptOutcome.Failure, TimeSpan.Zero, answeredAt);
        Assert.Equal(1, state.ConsecutiveFailures);
        Assert.Equal(TimeSpan.FromSeconds(1), Estimate(state, time));
        Assert.Equal(0, state.OpenStreams);
        Assert.Equal(0, state.InFlight);
    }

    private static EndpointLease Lease(ServiceTable table, EndpointSnapshot snapshot, EndpointEntry endpoint, TimeProvider time)
    {
        Assert.True(endpoint.State.TryAdmit(panic: false, unreachableAdmitted: false, out var isProbe));
        return new EndpointLease(table, snapshot, endpoint, isProbe, time.GetTimestamp());
    }

    private static TimeSpan Estimate(EndpointState state, TimeProvider time) =>
        TimeSpan.FromSeconds(state.LatencyEstimate / time.TimestampFrequency);
}
