using MeshClient.Internal;

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

/// <summary>Smooth weighted round robin over the snapshot's precomputed EDF order.</summary>
internal sealed class RoundRobinPolicy : LoadBalancingPolicy
{
    public static readonly RoundRobinPolicy Instance = new();

    public override string Name => LoadBalancerNames.RoundRobin;

    public override bool NeedsRoundRobinSequence => true;

    protected override EndpointEntry PickCore(EndpointSnapshot snapshot, Randomizer random)
    {
        var sequence = snapshot.RoundRobinSequence;
        return sequence.Length == 0
            ? snapshot.Active[snapshot.DrawWeighted(random.NextInt64(snapshot.TotalWeight))]
            : snapshot.Active[sequence[(int)((uint)snapshot.NextRoundRobin() % (uint)sequence.Length)]];
    }
}

/// <summary>
/// Power of two choices with both candidates drawn in proportion to weight (with replacement), the cheaper one
/// wins, ties to the first. Comparing raw cost (not cost / weight) keeps the shares exact under equal load:
/// 1:2:3 gives 1/6, 2/6, 3/6, where "P2C on cost / weight" would starve the lightest endpoint.
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
        var first = active[firstIndex];
        if (secondIndex != firstIndex)
        {
            var second = active[secondIndex];
            return Cost(second.State, now) < Cost(first.State, now) ? second : first;
        }

        // A weighted draw among the others: skip the first endpoint's slice of the prefix sums.
        var firstWeight = snapshot.Weights[firstIndex];
        if (total == firstWeight)
        {
            return first;
        }

        var ticket = random.NextInt64(total - firstWeight);
        var firstStart = snapshot.CumulativeWeights[firstIndex] - firstWeight;
        var other = active[snapshot.DrawWeighted(ticket >= firstStart ? ticket + firstWeight : ticket)];
        return Cost(first.State, now) > OutlierCostRatio * Cost(other.State, now) ? other : first;
    }

    /// <summary>Reads the clock once per pick, for policies whose cost depends on time.</summary>
    protected virtual long Now() => 0;

    protected abstract double Cost(EndpointState state, long now);
}

/// <summary>Cost = requests in flight + 1 (Envoy's least request).</summary>
internal sealed class LeastRequestPolicy : PowerOfTwoChoicesPolicy
{
    public static readonly LeastRequestPolicy Instance = new();

    public override string Name => LoadBalancerNames.LeastRequest;

    protected override double Cost(EndpointState state, long now) => state.InFlight + 1;
}

/// <summary>
/// Cost = peak-EWMA latency × (requests in flight + 1) (Finagle, Linkerd). The latency estimate decays towards zero
/// with the time since the endpoint's last sample (as tower's and Finagle's do): an endpoint that stopped being
/// picked because it was once slow or failing is tried again after a few decay times, and its next answers say
/// whether it recovered. Without the decay, P2C never picks it again, so its estimate never changes: it is starved
/// for good (found by the chaos soak: a backend slow for 6 s got no traffic for the rest of the run).
/// </summary>
internal sealed class PeakEwmaPolicy(double defaultRtt, double decay, TimeProvider timeProvider) : PowerOfTwoChoicesPolicy
{
    public override string Name => LoadBalancerNames.PeakEwma;

    protected override long Now() => timeProvider.GetTimestamp();

    protected override double Cost(EndpointState state, long now)
    {
        var latency = state.LatencyEstimateAt(now, decay);
        return (latency > 0 ? latency : defaultRtt) * (state.InFlight + 1);
    }
}
