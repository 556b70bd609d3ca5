
using MeshClient.Configuration;
using MeshClient.Model;

namespace MeshClient.Balancing;

/// <summary>
/// A load-balancing policy. Implementations are stateless apart from what the snapshot holds, lock-free and
/// allocation-free. Every policy honours weights: under equal load an endpoint's share follows its weight.
/// </summary>
internal abstract class LoadBalancingPolicy
{
    public abstract string Name { get; }

    public virtual bool NeedsRoundRobinSequence => false;

    /// <summary>
    /// Picks an endpoint of <see cref="EndpointSnapshot.Active"/>, avoiding those that <paramref name="context"/>
    /// already tried while an untried one remains. Returns <see langword="null"/> when there is no endpoint.
    /// </summary>
    public EndpointEntry? Pick(EndpointSnapshot snapshot, Randomizer random, MeshRequestContext? context)
    {
        var active = snapshot.Active;
        if (active.Length <= 1)
        {
            return active.Length == 0 ? null : active[0];
        }

        var picked = PickCore(snapshot, random);
        if (context is null || context.TriedCount == 0 || !context.HasTried(picked.State))
        {
            return picked;
        }

        return PickUntried(snapshot, random, context) ?? picked;
    }

    protected abstract EndpointEntry PickCore(EndpointSnapshot snapshot, Randomizer random);

    /// <summary>The retry path: a weighted draw among the endpoints this request has not tried yet.</summary>
    private static EndpointEntry? PickUntried(EndpointSnapshot snapshot, Randomizer random, MeshRequestContext context)
    {
        var active = snapshot.Active;
        var weights = snapshot.Weights;
        long total = 0;
        for (var i = 0; i < active.Length; i++)
        {
            if (!context.HasTried(active[i].State))
            {
                total += weights[i];
            }
        }

        if (total == 0)
        {
            return null;
        }

        var ticket = random.NextInt64(total);
        for (var i = 0; i < active.Length; i++)
        {
            if (context.HasTried(active[i].State))
            {
                continue;
            }

            ticket -= weights[i];
            if (ticket < 0)
            {
                return active[i];
            }
        }

        return null;
    }

    public static LoadBalancingPolicy Create(string name, MeshOptions options, TimeProvider timeProvider) => name switch
    {
        LoadBalancerNames.RoundRobin => RoundRobinPolicy.Instance,
        LoadBalancerNames.Random => RandomPolicy.Instance,
        LoadBalancerNames.LeastRequest => LeastRequestPolicy.Instance,
        _ => new PeakEwmaPolicy(
            options.PeakEwma.DefaultRtt.TotalSeconds * timeProvider.TimestampFrequency,
            options.PeakEwma.DecayTime.TotalSeconds * timeProvider.TimestampFrequency,
            timeProvider),
    };
}

/// <summary>Weighted random: one draw over the prefix sums of the weights.</summary>
internal sealed class RandomPolicy : LoadBalancingPolicy
{
    public static readonly RandomPolicy Instance = new();

    public override string Name => LoadBalancerNames.Random;

    protected override EndpointEntry PickCore(EndpointSnapshot snapshot, Randomizer random) =>
        snapshot.Active[snapshot.DrawWeighted(random.NextInt64(snapshot.TotalWeight))];
}

/// <summary>
/// Smooth weighted round robin over the snapshot's precomputed EDF order; for weight sums too large for one (above
/// <see cref="WeightedSchedule.MaxLength"/>), the n-th pick takes ticket <c>n × stride mod total</c> of the prefix sums
/// (a binary search): exact shares over every period of the weight sum, no schedule to build, still lock-free and 0 B.
/// </summary>
internal sealed class RoundRobinPolicy : LoadBalancingPolicy
{
    public static readonly RoundRobinPolicy Instance = new();

    public override string Name => LoadBalancerNames.RoundRobin;

    public override bool NeedsRoundRobinSequence => true;

    protected override EndpointEntry PickCore(EndpointSnapshot snapshot, Randomizer random)
    {
        var sequence = snapshot.RoundRobinSequence;
        if (sequence.Length != 0)
        {
            return snapshot.Active[sequence[(int)((uint)snapshot.NextRoundRobin() % (uint)sequence.Length)]];
        }

        var total = (ulong)snapshot.TotalWeight;
        if (total > uint.MaxValue)
        {
            // n × stride would overflow: more than 65,537 endpoints at the highest weight. Draw by weight instead.
            return snapshot.Active[snapshot.DrawWeighted(random.NextInt64(snapshot.TotalWeight))];
        }

        var n = (uint)snapshot.NextRoundRobin() % total;
        return snapshot.Active[snapshot.DrawWeighted((long)(n * (ulong)snapshot.RoundRobinStride % total))];
    }
}

/// <summary>
/// Power of two choices with both candidates drawn in proportion to weight (with replacement); the better one wins,
/// ties to the first. Under equal load every comparison is a tie, so the first draw decides and the shares are
/// exactly the weights: 1:2:3 gives 1/6, 2/6, 3/6, where "P2C on cost / weight" would starve the lightest endpoint.
/// Load is counted per unit of weight (in flight / weight): a weight-3 endpoint carrying three times the requests of
/// a weight-1 one is as loaded, so concurrent callers do not pull the shares towards equal (raw in-flight counts
/// gave 25/35/41% for 1:2:3 at 8 callers).
/// <para>
/// Drawing with replacement has a price: an endpoint drawn twice is picked however slow it is, which sends a slow
/// one of n endpoints at least 1/n² of the traffic (6% of 4) and puts it in the p99. So when both draws are the
/// same endpoint, a third, distinct endpoint is drawn and replaces it only if the drawn-twice one costs more than
/// <see cref="OutlierCostRatio"/> times as much: under equal load that never happens (the shares stay exact), and
/// a real outlier gets traffic only when it wins a comparison (Linkerd and Finagle draw distinct candidates).
/// </para>
/// </summary>
internal abstract class PowerOfTwoChoicesPolicy : LoadBalancingPolicy
{
    internal const double OutlierCostRatio = 2.0;

    protected override EndpointEntry PickCore(EndpointSnapshot snapshot, Randomizer random)
    {
        var active = snapshot.Active;
        var total = snapshot.TotalWeight;
        var now = Now();
        var firstIndex = snapshot.DrawWeighted(random.NextInt64(total));
        var secondIndex = snapshot.DrawWeighted(random.NextInt64(total));
        if (secondIndex != firstIndex)
        {
            return active[Prefers(snapshot, secondIndex, firstIndex, now) ? secondIndex : firstIndex];
        }

        // A weighted draw among the others: skip the first endpoint's slice of the prefix sums.
        var firstWeight = snapshot.Weights[firstIndex];
        if (total == firstWeight)
        {
            return active[firstIndex];
        }

        var ticket = random.NextInt64(total - firstWeight);
        var firstStart = snapshot.CumulativeWeights[firstIndex] - firstWeight;
        var otherIndex = snapshot.DrawWeighted(ticket >= firstStart ? ticket + firstWeight : ticket);
        return active[IsOutlier(snapshot, firstIndex, otherIndex, now) ? otherIndex : firstIndex];
    }

    /// <summary>Reads the clock once per pick, for policies whose cost depends on time.</summary>
    protected virtual long Now() => 0;

    /// <summary>Gets the requests in flight to an endpoint per unit of its weight.</summary>
    protected static double Load(EndpointSnapshot snapshot, int index) =>
        snapshot.Active[index].State.InFlight * snapshot.LoadPerRequest[index];

    /// <summary>Whether <paramref name="candidate"/> is strictly better than <paramref name="incumbent"/> (a tie keeps the incumbent).</summary>
    protected abstract bool Prefers(EndpointSnapshot snapshot, int candidate, int incumbent, long now);

    /// <summary>Whether the endpoint drawn twice costs more than <see cref="OutlierCostRatio"/> times <paramref name="other"/>.</summary>
    protected abstract bool IsOutlier(EndpointSnapshot snapshot, int drawnTwice, int other, long now);
}

/// <summary>Cost = in flight / weight + 1 (Envoy's least request, with the load counted per unit of weight).</summary>
internal sealed class LeastRequestPolicy : PowerOfTwoChoicesPolicy
{
    public static readonly LeastRequestPolicy Instance = new();

    public override string Name => LoadBalancerNames.LeastRequest;

    protected override bool Prefers(EndpointSnapshot snapshot, int candidate, int incumbent, long now) =>
        Load(snapshot, candidate) < Load(snapshot, incumbent);

    protected override bool IsOutlier(EndpointSnapshot snapshot, int drawnTwice, int other, long now) =>
        Load(snapshot, drawnTwice) + 1 > OutlierCostRatio * (Load(snapshot, other) + 1);
}

/// <summary>
/// Cost = peak-EWMA latency × (in flight / weight + 1) (Finagle, Linkerd; the load per unit of weight as in
/// <see cref="LeastRequestPolicy"/>). Latencies within <see cref="LatencyBand"/> of each other count as equal — the
/// jitter of healthy endpoints, which would otherwise decide every comparison and skew the shares (the endpoint with
/// the lowest recent peak took 76% of 1:2:3) — and then the load decides, ties to the first draw; beyond it the cost
/// decides.
/// <para>
/// An endpoint that has no latency sample yet costs nothing while idle, so it is tried at once, and the default RTT
/// while busy, so a burst does not pile onto it; its own answers take over from the fourth one (the first ones carried
/// the connection set-up, <see cref="EndpointState.IsWarmUpAnswer"/>). Scoring an unmeasured endpoint at the default RTT
/// (30 ms) against peers measured at 0.3 ms starved it for good: shares 0 / 23.5 / 76.5% for 1:2:3, and 16 of 16
/// calls to one of two instances.
/// </para>
/// <para>
/// The estimate of an endpoint that stopped being picked because it looked slow falls with the time since its last
/// sample (as tower's and Finagle's do) and with every pick that passes it over for its latency
/// (<see cref="PassedOverDecay"/>), so it is tried again after a few hundred picks elsewhere or a few decay times,
/// whichever comes first, and its next answer says whether it recovered. Without that, P2C never picks it again, so
/// its estimate never changes: it is starved for good (found by the chaos soak: a backend slow for 6 s got no traffic
/// for the rest of the run).
/// </para>
/// </summary>
internal sealed class PeakEwmaPolicy(double defaultRtt, double decay, TimeProvider timeProvider) : PowerOfTwoChoicesPolicy
{
    /// <summary>Latencies that differ by less than this factor count as equal.</summary>
    internal const double LatencyBand = 2.0;

    /// <summary>The share of its estimate an endpoint loses each time a pick passes it over for its latency.</summary>
    internal const double PassedOverDecay = 1.0 / 64;

    public override string Name => LoadBalancerNames.PeakEwma;

    protected override long Now() => timeProvider.GetTimestamp();

    protected override bool Prefers(EndpointSnapshot snapshot, int candidate, int incumbent, long now)
    {
        var candidateLatency = Latency(snapshot, candidate, now);
        var incumbentLatency = Latency(snapshot, incumbent, now);
        var candidateLoad = Load(snapshot, candidate);
        var incumbentLoad = Load(snapshot, incumbent);
        if (candidateLatency <= LatencyBand * incumbentLatency && incumbentLatency <= LatencyBand * candidateLatency)
        {
            return candidateLoad < incumbentLoad;
        }

        var prefers = candidateLatency * (candidateLoad + 1) < incumbentLatency * (incumbentLoad + 1);
        if (prefers ? incumbentLatency > candidateLatency && candidateLatency > 0 : candidateLatency > incumbentLatency && incumbentLatency > 0)
        {
            snapshot.Active[prefers ? incumbent : candidate].State.OnPassedOver(PassedOverDecay);
        }

        return prefers;
    }

    protected override bool IsOutlier(EndpointSnapshot snapshot, int drawnTwice, int other, long now)
    {
        var drawnLatency = Latency(snapshot, drawnTwice, now);
        var otherLatency = Latency(snapshot, other, now);
        var outlier = drawnLatency * (Load(snapshot, drawnTwice) + 1) > OutlierCostRatio * otherLatency * (Load(snapshot, other) + 1);
        if (outlier && drawnLatency > otherLatency && otherLatency > 0)
        {
            snapshot.Active[drawnTwice].State.OnPassedOver(PassedOverDecay);
        }

        return outlier;
    }

    /// <summary>The latency estimate as of now; for an endpoint not measured yet, 0 while idle and the default RTT while busy.</summary>
    private double Latency(EndpointSnapshot snapshot, int index, long now)
    {
        var state = snapshot.Active[index].State;
        var latency = state.LatencyEstimateAt(now, decay);
        return latency > 0 ? latency : state.InFlight == 0 ? 0 : defaultRtt;
    }
}
