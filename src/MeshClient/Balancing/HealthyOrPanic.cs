using MeshClient.Model;

namespace MeshClient.Balancing;

/// <summary>
/// The health decision of a snapshot (YARP's <c>HealthyOrPanicDestinationsPolicy</c>, Envoy's panic threshold): the
/// endpoints that take traffic are those not ejected, unless too few are healthy — then the service is in panic and
/// balances over all of them rather than overload the few or fail. Panic never brings back an endpoint that refused
/// connections (sending to it only costs a retry), unless every endpoint did: then attempts go on, and find the first
/// one back.
/// </summary>
internal static class HealthyOrPanic
{
    /// <summary>Chooses the endpoints that take traffic.</summary>
    /// <param name="all">Every discovered endpoint.</param>
    /// <param name="panicThresholdPercent">Below this share of healthy endpoints the service is in panic.</param>
    /// <param name="panic">Whether the service is in panic.</param>
    /// <param name="unreachableAdmitted">Whether every endpoint is unreachable and all are admitted anyway.</param>
    /// <param name="healthy">How many endpoints are healthy.</param>
    public static EndpointEntry[] Select(EndpointEntry[] all, int panicThresholdPercent, out bool panic, out bool unreachableAdmitted, out int healthy)
    {
        healthy = 0;
        var admitted = 0;
        var unreachable = 0;
        foreach (var entry in all)
        {
            var status = entry.State.Status;
            healthy += status == EndpointStatus.Healthy ? 1 : 0;
            admitted += status != EndpointStatus.Ejected ? 1 : 0;
            unreachable += status == EndpointStatus.Ejected && entry.State.Unreachable ? 1 : 0;
        }

        panic = all.Length > 0 && healthy * 100 < all.Length * panicThresholdPercent;
        unreachableAdmitted = panic && unreachable == all.Length;
        if ((panic && (unreachable == 0 || unreachable == all.Length)) || admitted == all.Length)
        {
            return all;
        }

        var active = new EndpointEntry[panic ? all.Length - unreachable : admitted];
        var n = 0;
        foreach (var entry in all)
        {
            var ejected = entry.State.Status == EndpointStatus.Ejected;
            if (!ejected || (panic && !entry.State.Unreachable))
            {
                active[n++] = entry;
            }
        }

        return active;
    }
}
