namespace MeshClient.Configuration;

/// <summary>
/// The names of the load-balancing policies, as written in <c>Mesh:LoadBalancer</c> and
/// <c>Mesh:Services:{name}:LoadBalancer</c>. Every policy honours endpoint weights.
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

    internal static readonly string[] All = [PeakEwma, LeastRequest, RoundRobin, Random];

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
