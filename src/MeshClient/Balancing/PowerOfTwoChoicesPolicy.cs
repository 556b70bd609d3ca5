using MeshClient.Model;

namespace MeshClient.Balancing;

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
