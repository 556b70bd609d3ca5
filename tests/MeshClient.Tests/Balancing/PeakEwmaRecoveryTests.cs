using System.Net;
using MeshClient.Balancing;
using MeshClient.Internal;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// Peak EWMA must not starve an endpoint for good: one that was slow is tried again once its estimate has decayed,
/// and one that joins a service of fast endpoints takes its share at once (both found by the chaos soak).
/// </summary>
public sealed class PeakEwmaRecoveryTests
{
    private static readonly Randomizer Seeded = new SeededRandomizer(11);

    [Fact]
    public void AnEndpointNoLongerPickedBecauseItWasSlow_IsTriedAgain_AfterItsEstimateDecays()
    {
        var time = new FakeTimeProvider();
        var f = (double)time.TimestampFrequency;
        var policy = LoadBalancingPolicy.Create(LoadBalancerNames.PeakEwma, new MeshOptions(), time);
        var decay = 10 * f;
        var fast = new EndpointState("fast");
        var slow = new EndpointState("slow");
        slow.RecordLatency(time.GetTimestamp(), 0.300 * f, decay);
        var snapshot = SnapshotFactory.Snapshot(policy,
            SnapshotFactory.Entry("http://10.0.0.1:80", 1, state: fast),
            SnapshotFactory.Entry("http://10.0.0.2:80", 1, state: slow));

        // The fast endpoint keeps being measured (1 ms) while the slow one, never picked, gets no sample.
        int SlowPicksOver(TimeSpan span)
        {
            var picks = 0;
            for (var i = 0; i < 1_000; i++)
            {
                time.Advance(span / 1_000);
                fast.RecordLatency(time.GetTimestamp(), 0.001 * f, decay);
                picks += policy.Pick(snapshot, Seeded, null)!.State == slow ? 1 : 0;
            }

            return picks;
        }

        Assert.Equal(0, SlowPicksOver(TimeSpan.FromSeconds(10)));

        // 300 ms decays below twice the 1 ms of its peer after ln(150) ≈ 5 decay times (50 s): it is tried again.
        var later = SlowPicksOver(TimeSpan.FromSeconds(60));
        Assert.InRange(later, 1, 1_000);
    }

    [Fact]
    public void AnEndpointNeverMeasured_StartsAtTheMedianOfItsPeers_NotAtTheDefaultRtt()
    {
        var time = new FakeTimeProvider();
        var f = (double)time.TimestampFrequency;
        var state = new EndpointState("new");
        state.SeedLatency(time.GetTimestamp(), 0.002 * f);
        Assert.Equal(0.002 * f, state.LatencyEstimate, 6);

        // A measured endpoint is never reseeded.
        state.RecordLatency(time.GetTimestamp(), 0.050 * f, 10 * f);
        state.SeedLatency(time.GetTimestamp(), 0.002 * f);
        Assert.Equal(0.050 * f, state.LatencyEstimate, 6);
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

        // Without a starting estimate the newcomer competes with the 30 ms default RTT against 1 ms peers and gets
        // nothing; seeded with their median it takes about its fair fifth.
        Assert.InRange(stub.Count("10.0.0.5:8080"), 120, 300);
    }
}
