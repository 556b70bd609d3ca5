namespace MeshClient.Configuration;

/// <summary>
/// The names of the load-balancing policies, as written in <c>Mesh:LoadBalancer</c> and
/// <c>Mesh:Services:{name}:LoadBalancer</c>. Every policy honours endpoint weights (<see cref="WeightedRoundRobin"/> those
/// the endpoints' load reports give, once they report).
/// </summary>
public static class LoadBalancerNames
{
    /// <summary>
    /// Power of two choices, candidates drawn in proportion to weight, cost = peak-EWMA latency × (in flight / weight
    /// + 1) (Finagle, Linkerd); latencies within a factor of 2 count as equal. The default.
    /// </summary>
    public const string PeakEwma = "PeakEwma";

    /// <summary>
    /// Power of two choices, candidates drawn in proportion to weight, cost = requests in flight / weight + 1 (Envoy).
    /// </summary>
    public const string LeastRequest = "LeastRequest";

    /// <summary>Smooth weighted round robin (nginx, Envoy's EDF in effect).</summary>
    public const string RoundRobin = "RoundRobin";

    /// <summary>Weighted random.</summary>
    public const string Random = "Random";

    /// <summary>
    /// Smooth weighted round robin by the load each endpoint reports of itself (ORCA's <c>endpoint-load-metrics</c>):
    /// weight = qps / (utilization + penalty × eps / qps), gRPC's <c>weighted_round_robin</c> (gRFC A58). Tuned by
    /// <see cref="WeightedRoundRobinOptions"/>.
    /// </summary>
    public const string WeightedRoundRobin = "WeightedRoundRobin";

    internal static readonly string[] All = [PeakEwma, LeastRequest, RoundRobin, Random, WeightedRoundRobin];

    internal static string? Normalize(string? name)
    {
        foreach (var known in All)
        {
            if (string.Equals(known, name, StringComparison.OrdinalIgnoreCase))
            {
                return known;
            }
        }

        return null;
    }
}
