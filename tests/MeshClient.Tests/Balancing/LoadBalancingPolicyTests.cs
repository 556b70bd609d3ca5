using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;

namespace MeshClient.Tests.Balancing;

public sealed class LoadBalancingPolicyTests
{
    private static readonly Randomizer Seeded = new SeededRandomizer(42);

    public static TheoryData<string> Policies => new() { LoadBalancerNames.RoundRobin, LoadBalancerNames.Random, LoadBalancerNames.LeastRequest, LoadBalancerNames.PeakEwma };

    [Theory]
    [MemberData(nameof(Policies))]
    public void EveryPolicy_UnderEqualLoad_GivesSharesProportionalToWeight(string name)
    {
        var policy = LoadBalancingPolicy.Create(name, new MeshOptions(), TimeProvider.System);
        var snapshot = SnapshotFactory.Snapshot(policy, 1, 2, 3);
        var counts = new int[3];
        const int Picks = 60_000;
        for (var i = 0; i < Picks; i++)
        {
            var picked = policy.Pick(snapshot, Seeded, context: null)!;
            counts[Array.IndexOf(snapshot.Active, picked)]++;
        }

        Assert.InRange(counts[0] / (double)Picks, 1 / 6.0 - 0.01, 1 / 6.0 + 0.01);
        Assert.InRange(counts[1] / (double)Picks, 2 / 6.0 - 0.01, 2 / 6.0 + 0.01);
        Assert.InRange(counts[2] / (double)Picks, 3 / 6.0 - 0.01, 3 / 6.0 + 0.01);
    }

    [Fact]
    public void RoundRobin_IsSmooth_AndExactOverOnePeriod()
    {
        var snapshot = SnapshotFactory.Snapshot(RoundRobinPolicy.Instance, 1, 2, 3);
        var order = Enumerable.Range(0, 12).Select(_ => Array.IndexOf(snapshot.Active, RoundRobinPolicy.Instance.Pick(snapshot, Seeded, null))).ToArray();

        // Exact shares over every period of 6, and the heaviest endpoint never gets three picks in a row.
        for (var period = 0; period < 2; period++)
        {
            var window = order.Skip(period * 6).Take(6).ToArray();
            Assert.Equal(1, window.Count(i => i == 0));
            Assert.Equal(2, window.Count(i => i == 1));
            Assert.Equal(3, window.Count(i => i == 2));
        }

        for (var i = 2; i < order.Length; i++)
        {
            Assert.False(order[i] == order[i - 1] && order[i] == order[i - 2], string.Join(",", order));
        }
    }

    [Fact]
    public void LeastRequest_PicksTheLessBusy_UnlessBothCandidatesAreTheBusyOne()
    {
        var busy = new EndpointState("busy");
        for (var i = 0; i < 5; i++)
        {
            busy.OnAttemptStarted();
        }

        var snapshot = SnapshotFactory.Snapshot(LeastRequestPolicy.Instance,
            SnapshotFactory.Entry("http://10.0.0.1:80", 1, state: busy),
            SnapshotFactory.Entry("http://10.0.0.2:80", 1));
        var busyPicks = Enumerable.Range(0, 10_000).Count(_ => LeastRequestPolicy.Instance.Pick(snapshot, Seeded, null)!.State == busy);

        Assert.Equal(0, busyPicks); // cost 6 vs 1: even when drawn twice, a distinct draw replaces it
    }

    [Fact]
    public void PeakEwma_AvoidsTheSlowEndpoint()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var policy = (PeakEwmaPolicy)LoadBalancingPolicy.Create(LoadBalancerNames.PeakEwma, new MeshOptions(), time);
        var fast = new EndpointState("fast");
        var slow = new EndpointState("slow");
        var decay = 10 * time.TimestampFrequency;
        fast.RecordLatency(time.GetTimestamp(), 0.005 * time.TimestampFrequency, decay);
        slow.RecordLatency(time.GetTimestamp(), 0.100 * time.TimestampFrequency, decay);
        var snapshot = SnapshotFactory.Snapshot(policy,
            SnapshotFactory.Entry("http://10.0.0.1:80", 1, state: fast),
            SnapshotFactory.Entry("http://10.0.0.2:80", 1, state: slow));

        // Every pick of the slow endpoint is answered slowly again (the clock stands still: no decay with time).
        var slowPicks = 0;
        for (var i = 0; i < 10_000; i++)
        {
            if (policy.Pick(snapshot, Seeded, null)!.State == slow)
            {
                slowPicks++;
                slow.RecordLatency(time.GetTimestamp(), 0.100 * time.TimestampFrequency, decay);
            }
        }

        // Drawn twice, the slow endpoint (20x the cost) is replaced by a distinct draw: it wins only when the picks
        // that passed it over have lowered its estimate into the band of its peer's (64 × ln 10 ≈ 150 of them, so
        // about one pick in 200), and its answer takes it out again: about 0.5%.
        Assert.InRange(slowPicks, 1, 100);
    }

    [Fact]
    public void PeakEwma_ASingleSpikeAtMostDoubles_ASecondSlowAnswerOrAFailureIsAPeak_AndItDecaysWithTime()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var f = (double)time.TimestampFrequency;
        var state = new EndpointState("e");
        var decay = 10 * f;
        state.RecordLatency(time.GetTimestamp(), 0.010 * f, decay);
        Assert.Equal(0.010 * f, state.LatencyEstimate, 6);

        time.Advance(TimeSpan.FromSeconds(1));
        state.RecordLatency(time.GetTimestamp(), 0.500 * f, decay);
        Assert.Equal(0.020 * f, state.LatencyEstimate, 6); // one slow answer among fast ones: doubled, no more
        state.RecordLatency(time.GetTimestamp(), 0.500 * f, decay);
        Assert.Equal(0.500 * f, state.LatencyEstimate, 6); // a second in a row: the peak replaces the estimate

        time.Advance(TimeSpan.FromSeconds(10));
        state.RecordLatency(time.GetTimestamp(), 0.010 * f, decay);
        var keep = Math.Exp(-1);
        Assert.Equal(((0.500 * keep) + (0.010 * (1 - keep))) * f, state.LatencyEstimate, 3);

        // A failure is a fact, not noise: it replaces the estimate at once.
        state.RecordLatency(time.GetTimestamp(), 1.0 * f, decay, failure: true);
        Assert.Equal(1.0 * f, state.LatencyEstimate, 6);
    }

    [Fact]
    public void PeakEwma_UnderDenseTraffic_EachFastAnswerTakesAtLeastOneSixteenthOffAHigherEstimate()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var f = (double)time.TimestampFrequency;
        var state = new EndpointState("e");
        state.RecordLatency(time.GetTimestamp(), 0.008 * f, 10 * f);
        for (var i = 0; i < 48; i++)
        {
            state.RecordLatency(time.GetTimestamp(), 0.001 * f, 10 * f); // no time passes: the time weight alone keeps all
        }

        // 1 + 7 × (15/16)^48 ≈ 1.32 ms: the last few dozen answers, not the one slow answer of 10 s ago.
        Assert.InRange(state.LatencyEstimate / f, 0.0012, 0.0015);
    }

    [Fact]
    public void Retry_AvoidsEndpointsAlreadyTried_WhileAnUntriedOneRemains()
    {
        var snapshot = SnapshotFactory.Snapshot(RandomPolicy.Instance, 1, 1, 1);
        var context = new MeshRequestContext("svc");
        context.OnAttempt(snapshot.Active[0], "Random");
        context.OnAttempt(snapshot.Active[1], "Random");

        for (var i = 0; i < 100; i++)
        {
            Assert.Same(snapshot.Active[2], RandomPolicy.Instance.Pick(snapshot, Seeded, context));
        }

        context.OnAttempt(snapshot.Active[2], "Random");
        Assert.NotNull(RandomPolicy.Instance.Pick(snapshot, Seeded, context)); // all tried: any endpoint again
    }

    [Fact]
    public void EmptySnapshot_PicksNothing()
    {
        var snapshot = SnapshotFactory.Snapshot(RandomPolicy.Instance, Array.Empty<EndpointEntry>());
        Assert.Null(RandomPolicy.Instance.Pick(snapshot, Seeded, null));
    }
}

internal sealed class SeededRandomizer(int seed) : Randomizer
{
    private readonly Random _random = new(seed);

    public override long NextInt64(long maxExclusive)
    {
        lock (_random)
        {
            return _random.NextInt64(maxExclusive);
        }
    }

    public override double NextDouble()
    {
        lock (_random)
        {
            return _random.NextDouble();
        }
    }
}
