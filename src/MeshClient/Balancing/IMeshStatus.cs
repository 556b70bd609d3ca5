namespace MeshClient.Balancing;

/// <summary>
/// A read-only view of what the mesh knows right now: every service in use, its endpoints, their weight, state and
/// live load. Resolve it from dependency injection for a status page, a dashboard or a readiness check. Reading it
/// takes no lock on the request path.
/// </summary>
public interface IMeshStatus
{
    /// <summary>Returns the services the mesh has resolved, with their endpoints.</summary>
    /// <returns>A snapshot; it does not change afterwards.</returns>
    IReadOnlyList<MeshServiceStatus> GetServices();
}

/// <summary>The state of one service.</summary>
/// <param name="Name">The service name.</param>
/// <param name="LoadBalancer">The load-balancing policy in use.</param>
/// <param name="Panic">Whether too few endpoints are healthy, so traffic goes to all of them.</param>
/// <param name="Endpoints">The endpoints.</param>
public sealed record MeshServiceStatus(string Name, string LoadBalancer, bool Panic, IReadOnlyList<MeshEndpointStatus> Endpoints);

/// <summary>The state of one endpoint.</summary>
/// <param name="Id">The stable instance id.</param>
/// <param name="Address">The address requests are sent to.</param>
/// <param name="Weight">The weight.</param>
/// <param name="Zone">The zone, if known.</param>
/// <param name="State">One of <c>healthy</c>, <c>ejected</c>, <c>probing</c>.</param>
/// <param name="InFlight">The attempts in flight now.</param>
/// <param name="Attempts">The attempts sent since the endpoint was discovered.</param>
/// <param name="LatencyEstimate">The peak-EWMA latency estimate, or <see langword="null"/> before the first answer.</param>
public sealed record MeshEndpointStatus(string Id, string Address, int Weight, string? Zone, string State, int InFlight, long Attempts, TimeSpan? LatencyEstimate)
{
    /// <summary>
    /// Gets the percentage of its weight the endpoint gets while in slow start (<see cref="SlowStartOptions"/>), or
    /// <see langword="null"/> when it is not in slow start.
    /// </summary>
    public int? SlowStartPercent { get; init; }
}
