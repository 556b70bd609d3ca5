using MeshClient.Configuration;
using MeshClient.Model;

namespace MeshClient.Balancing;

/// <summary>
/// A load-balancing policy. Implementations are stateless apart from what the snapshot holds, lock-free and
/// allocation-free. Every policy honours weights: under equal load an endpoint's share follows its weight (for
/// <see cref="WeightedRoundRobinPolicy"/>, the weights the endpoints report, once they report).
/// </summary>
internal abstract class LoadBalancingPolicy
{
    public abstract string Name { get; }

    public virtual bool NeedsRoundRobinSequence => false;

    /// <summary>Gets a value indicating whether the policy weighs endpoints by the load they report (ORCA): only then are reports read.</summary>
    public virtual bool ReadsLoadReports => false;

    /// <summary>
    /// Picks an endpoint of <see cref="EndpointSnapshot.Active"/>, avoiding those that <paramref name="context"/>
    /// already tried while an untried one remains (and, for a hedge, <see cref="MeshRequestContext.UntriedOnly"/>, only
    /// an untried one). Returns <see langword="null"/> when there is no endpoint.
    /// </summary>
    public EndpointEntry? Pick(EndpointSnapshot snapshot, Randomizer random, MeshRequestContext? context)
    {
        var active = snapshot.Active;
        if (active.Length <= 1)
        {
            return active.Length == 0 || (context is { UntriedOnly: true } && context.HasTried(active[0].State)) ? null : active[0];
        }

        var picked = PickCore(snapshot, random);
        if (context is null || context.TriedCount == 0 || !context.HasTried(picked.State))
        {
            return picked;
        }

        return PickUntried(snapshot, random, context) ?? (context.UntriedOnly ? null : picked);
    }

    protected abstract EndpointEntry PickCore(EndpointSnapshot snapshot, Randomizer random);

    /// <summary>
    /// Records an attempt's latency in the endpoint's peak-EWMA estimate (every policy keeps it: the status page shows
    /// it, and <see cref="PeakEwmaPolicy"/> picks by it). The first answers of an endpoint carried its connection
    /// set-up: they are not latency samples (a failure is, at least <see cref="EndpointSnapshot.FailurePenalty"/>).
    /// </summary>
    /// <param name="snapshot">The snapshot the attempt was picked from (decay and failure penalty).</param>
    /// <param name="state">The endpoint.</param>
    /// <param name="elapsed">How long the attempt took, in timestamp units.</param>
    /// <param name="now">The timestamp of its end.</param>
    /// <param name="failed">Whether it failed.</param>
    public virtual void OnAttemptEnded(EndpointSnapshot snapshot, EndpointState state, long elapsed, long now, bool failed)
    {
        if (failed || !state.IsWarmUpAnswer())
        {
            var rtt = failed ? Math.Max(elapsed, snapshot.FailurePenalty) : elapsed;
            state.RecordLatency(now, rtt, snapshot.Decay, failure: failed);
            if (snapshot.SamplesZones)
            {
                state.AddZoneSample(rtt); // the same sample, for zone routing's means (ZoneBalance)
            }
        }
    }

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

    /// <summary>Creates the policy named <paramref name="name"/> (normalized) with the options of the mesh and of the service.</summary>
    public static LoadBalancingPolicy Create(string name, MeshOptions options, TimeProvider timeProvider, MeshServiceOptions? service = null) => name switch
    {
        LoadBalancerNames.RoundRobin => RoundRobinPolicy.Instance,
        LoadBalancerNames.Random => RandomPolicy.Instance,
        LoadBalancerNames.LeastRequest => LeastRequestPolicy.Instance,
        LoadBalancerNames.WeightedRoundRobin => new WeightedRoundRobinPolicy(options.WeightedRoundRobin, service?.WeightedRoundRobin, timeProvider),
        _ => new PeakEwmaPolicy(
            options.PeakEwma.DefaultRtt.TotalSeconds * timeProvider.TimestampFrequency,
            options.PeakEwma.DecayTime.TotalSeconds * timeProvider.TimestampFrequency,
            timeProvider),
    };
}
