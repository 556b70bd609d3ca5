using MeshClient.Configuration;
using MeshClient.Model;

namespace MeshClient.Balancing;

/// <summary>Weighted random: one draw over the prefix sums of the weights.</summary>
internal sealed class RandomPolicy : LoadBalancingPolicy
{
    public static readonly RandomPolicy Instance = new();

    public override string Name => LoadBalancerNames.Random;

    protected override EndpointEntry PickCore(EndpointSnapshot snapshot, Randomizer random) =>
        snapshot.Active[snapshot.DrawWeighted(random.NextInt64(snapshot.TotalWeight))];
}
