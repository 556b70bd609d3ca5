using System.Net;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// Peak EWMA must not starve an endpoint for good: one that was slow is tried again once its estimate has decayed,
/// and one not measured yet — at start-up or joining a service of fast endpoints — takes its share at once.
/// </summary>
public sealed class PeakEwmaRecoveryTests
{
    private static readonly Randomizer Seeded = new SeededRandomizer(11);

    [Fact]
    public void AnEndpointPassedOverBecauseItWasSlow_IsTriedAgainAfterAFewHundredPicks_AndTakesItsShareOnceItRecovered()
    {
        var time = new FakeTimeProvider();
        var f = (double)time.TimestampFrequency;
        var policy = LoadBalancingPolicy.Create(LoadBalancerNames.PeakEwma, new MeshOptions(), time);
        var decay = 10 * f;
        var fast = new EndpointState("fast");
        var slow = new EndpointState("slow");
        fast.RecordLatency(time.GetTimestamp(), 0.001 * f, decay);
        slow.RecordLatency(time.GetTimestamp(), 0.300 * f, decay);
        var snapshot = SnapshotFactory.Snapshot(policy,
            SnapshotFactory.Entry("http://10.0.0.1:80", 1, state: fast),
            SnapshotFactory.Entry("http://10.0.0.2:80", 1, state: slow));

        // Each pick is answered at once (the clock stands still: only the picks that pass it over lower its estimate).
        int SlowPicks(double slowLatency)
        {
            var picks = 0;
            for (var i = 0; i < 4_000; i++)
            {
                var picked = policy.Pick(snapshot, Seeded, null)!.State;
                picked.RecordLatency(time.GetTimestamp(), (picked == slow ? slowLatency : 0.001) * f, decay);
                picks += picked == slow ? 1 : 0;
            }

            return picks;
        }

        // Still slow: tried again every few hundred picks (its estimate falls by 1/64 per pick that passes it over,
        // from 300 ms to twice 1 ms: 64 × ln 150 ≈ 320), and each answer takes it out again.
        Assert.InRange(SlowPicks(0.300), 4, 40);

        // Recovered: its next answers bring it back into the band of its peer, and it takes its half again.
        Assert.InRange(SlowPicks(0.001), 1_600, 2_400);
    }

    [Fact]
    public void AnEndpointNeverMeasured_IsTriedAtOnceWhileIdle_AndAvoidedWhileItsFirstRequestIsInFlight()
    {
        var time = new FakeTimeProvider();
        var f = (double)time.TimestampFrequency;
        var policy = LoadBalancingPolicy.Create(LoadBalancerNames.PeakEwma, new MeshOptions(), time);
        var fast = new EndpointState("fast");
        fast.RecordLatency(time.GetTimestamp(), 0.0003 * f, 10 * f);
        var fresh = new EndpointState("new");
        var snapshot = SnapshotFactory.Snapshot(policy,
            SnapshotFactory.Entry("http://10.0.0.1:80", 3, state: fast),
            SnapshotFactory.Entry("http://10.0.0.2:80", 1, state: fresh));

        // Unmeasured and idle: it wins every comparison, and replaces its peer drawn twice (with the default RTT of
        // 30 ms it lost them all).
        Assert.All(Enumerable.Range(0, 1_000), _ => Assert.Same(fresh, policy.Pick(snapshot, Seeded, null)!.State));

        // Its first request in flight: it costs the default RTT until it answers, so a burst does not pile onto it.
        fresh.OnAttemptStarted();
        Assert.Equal(0, Enumerable.Range(0, 1_000).Count(_ => policy.Pick(snapshot, Seeded, null)!.State == fresh));
    }

    [Fact]
    public void TheFirstThreeAnswers_CarriedTheConnectionSetUp_AndAreNotSamples()
    {
        var state = new EndpointState("e");
        Assert.Equal([true, true, true, false, false], Enumerable.Range(0, 5).Select(_ => state.IsWarmUpAnswer()));
    }

    [Fact]
    public async Task AnEndpointAddedToAFastService_TakesItsShareAtOnce()
    {
        var time = new FakeTimeProvider();
        var (host, stub) = StubEndpoints.CreateHost(time, s => s["Mesh:Services:catalog:LoadBalancer"] = LoadBalancerNames.PeakEwma);
        await using var _ = host;

        // Every endpoint answers in 1 ms of fake time (sequential calls: the clock is advanced by the answer itself).
        for (var i = 1; i <= 5; i++)
        {
            stub.Behaviors[$"10.0.0.{i}:8080"] = (_, _) =>
            {
                time.Advance(TimeSpan.FromMilliseconds(1));
                return StubEndpoints.Status(HttpStatusCode.OK);
            };
        }

        var client = host.CreateClient();
        for (var i = 0; i < 400; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
        }

        var settings = StubEndpoints.Settings("catalog", LoadBalancerNames.PeakEwma, 5);
        host.Configuration.Replace(settings);
        var table = host.Registry.Tables.Single();
        await Poll.UntilAsync(() => table.Snapshot?.All.Length == 5);
        stub.Reset();
        for (var i = 0; i < 1_000; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
        }

        // Scored at the 30 ms default RTT against 1 ms peers the newcomer got nothing; unmeasured, it is tried at once,
        // and measured at 1 ms it takes about its fair fifth.
        Assert.InRange(stub.Count("10.0.0.5:8080"), 120, 300);
    }
}
