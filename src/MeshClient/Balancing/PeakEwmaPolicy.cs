using MeshClient.Configuration;
using MeshClient.Model;

namespace MeshClient.Balancing;

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
