using MeshClient.Configuration;
using MeshClient.Model;

namespace MeshClient.Balancing;

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

    protected override EndpointEntry PickCore(EndpointSnapshot snapshot, Randomizer random) => PickInOrder(snapshot, random);

    /// <summary>The next endpoint of the snapshot's smooth weighted round robin (also <see cref="WeightedRoundRobinPolicy"/>'s pick).</summary>
    internal static EndpointEntry PickInOrder(EndpointSnapshot snapshot, Randomizer random)
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
