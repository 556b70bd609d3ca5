using MeshClient.Configuration;

namespace MeshClient.Balancing;

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
