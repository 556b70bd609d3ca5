using MeshClient.Configuration;
using MeshClient.Resilience;

namespace MeshClient.Status;

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

    /// <summary>
    /// Gets the zone the caller runs in (<c>Mesh:Zone</c>, else the <c>MESH_ZONE</c> environment variable), or
    /// <see langword="null"/> when it is not set (no zone routing).
    /// </summary>
    string? Zone => null;
}

/// <summary>The state of one service.</summary>
/// <param name="Name">The service name.</param>
/// <param name="LoadBalancer">The load-balancing policy in use.</param>
/// <param name="Panic">Whether too few endpoints are healthy, so traffic goes to all of them.</param>
/// <param name="Endpoints">The endpoints.</param>
public sealed record MeshServiceStatus(string Name, string LoadBalancer, bool Panic, IReadOnlyList<MeshEndpointStatus> Endpoints)
{
    /// <summary>
    /// Gets the name of the discovery provider that knows the service (<c>Consul</c>, <c>Kubernetes</c>,
    /// <c>Mesh configuration (Mesh:Services)</c>), or <see langword="null"/> when the provider does not say.
    /// </summary>
    public string? DiscoverySource { get; init; }

    /// <summary>Gets when discovery last changed the endpoints of the service.</summary>
    public DateTimeOffset? LastUpdated { get; init; }

    /// <summary>Gets when discovery last answered for the service.</summary>
    public DateTimeOffset? LastRefreshed { get; init; }

    /// <summary>Gets the message of the last discovery failure, while the last known endpoints keep serving; otherwise <see langword="null"/>.</summary>
    public string? DiscoveryError { get; init; }

    /// <summary>Gets the use of the service's retry budget, or <see langword="null"/> before its first call.</summary>
    public MeshRetryBudgetStatus? RetryBudget { get; init; }

    /// <summary>
    /// Gets the service's hedging: the delay in force (the adaptive one as last estimated) and the use of its hedge
    /// budget, or <see langword="null"/> when the service does not hedge.
    /// </summary>
    public MeshHedgingStatus? Hedging { get; init; }

    /// <summary>
    /// Gets the zone routing of the service (<see cref="ZoneRoutingOptions"/>), or <see langword="null"/> when it is off
    /// for the service (no caller zone, or <c>ZoneRouting:Enabled</c> false).
    /// </summary>
    public MeshZoneRoutingStatus? ZoneRouting { get; init; }

    /// <summary>
    /// Gets the routes of the service (<c>Mesh:Services:{name}:Routes</c>), in order, with the share each backend takes
    /// now; empty for a service without routes. A service with routes is listed even when it has no endpoints of its own.
    /// </summary>
    public IReadOnlyList<MeshRouteStatus> Routes { get; init; } = [];
}

/// <summary>The zone routing of one service, as it stands.</summary>
/// <param name="Zone">The caller's zone.</param>
/// <param name="Active">
/// Whether the service's endpoints say where they are (a zone, or Kubernetes zone hints), so that zone routing applies;
/// without any, the service is balanced as without zone routing.
/// </param>
/// <param name="Spill">
/// The share of calls (0 to 1) that leave the zone now — they ignore zones and the policy picks among all endpoints —:
/// 0 while the zone is healthy and not slower than the others, 1 when it has no healthy endpoint.
/// </param>
public sealed record MeshZoneRoutingStatus(string Zone, bool Active, double Spill)
{
    /// <summary>Gets the share of the recent attempts (the last few seconds) answered in the zone, or <see langword="null"/> before any.</summary>
    public double? LocalShare { get; init; }

    /// <summary>Gets the mean answer time of the zone's endpoints, or <see langword="null"/> before the first sample.</summary>
    public TimeSpan? LocalLatency { get; init; }

    /// <summary>Gets the mean answer time of the other zones' endpoints, or <see langword="null"/> before the first sample.</summary>
    public TimeSpan? RemoteLatency { get; init; }

    /// <summary>Gets the ratio of the two latencies that decides the spill, or <see langword="null"/> while one is unknown.</summary>
    public double? LatencyRatio { get; init; }

    /// <summary>Gets the number of the service's endpoints in the caller's zone (healthy or not).</summary>
    public int LocalEndpoints { get; init; }

    /// <summary>Gets the number of those that take calls now (healthy, not ejected or probing).</summary>
    public int HealthyLocalEndpoints { get; init; }
}

/// <summary>One route of a service.</summary>
/// <param name="Name">The route's name (its index when it has none).</param>
/// <param name="Backends">Its backends, in the configured order.</param>
public sealed record MeshRouteStatus(string Name, IReadOnlyList<MeshRouteBackendStatus> Backends)
{
    /// <summary>Gets what the route takes, in a few words (<c>GET, path prefix /api, x-canary: always</c>), or <see langword="null"/> for every request.</summary>
    public string? Match { get; init; }

    /// <summary>Gets the total timeout of the calls the route takes, or <see langword="null"/> for each backend's own.</summary>
    public TimeSpan? Timeout { get; init; }
}

/// <summary>One backend of a route and the share of the route's calls it takes now.</summary>
/// <param name="Service">The backend service.</param>
/// <param name="Weight">Its configured weight.</param>
/// <param name="Share">
/// The percentage of the route's calls it takes now: its weight over the weights of the backends that have a healthy
/// endpoint, 0 when it has none (its weight went to the others), or its plain weight share when no backend has one.
/// </param>
/// <param name="State">
/// <c>healthy</c> (it has a healthy endpoint), <c>pending</c> (discovery has not answered for it yet), <c>probing</c> (no endpoint is healthy
/// and one is probing: it gets one call per second so that its probe can readmit it) or <c>down</c> (no endpoint can
/// take traffic, or no provider knows the service).
/// </param>
public sealed record MeshRouteBackendStatus(string Service, int Weight, double Share, string State);

/// <summary>The hedging of a service (<c>Mesh[:Services:{name}]:Resilience:Hedging</c>).</summary>
/// <param name="Delay">The delay in force: the fixed <c>Delay</c>, or the adaptive one as last estimated.</param>
/// <param name="Percentile">The percentile of the adaptive delay, or <see langword="null"/> for a fixed delay.</param>
/// <param name="MaxAttempts">The most attempts of one try in flight at once.</param>
/// <param name="Budget">The use of the hedge budget over its window: <see cref="MeshRetryBudgetStatus.Retries"/> counts the hedges sent.</param>
public sealed record MeshHedgingStatus(TimeSpan Delay, double? Percentile, int MaxAttempts, MeshRetryBudgetStatus Budget);

/// <summary>The use of a service's retry budget over its rolling window.</summary>
/// <param name="Window">The rolling window.</param>
/// <param name="Requests">The requests counted in the window (first attempts).</param>
/// <param name="Retries">The retries taken in the window.</param>
/// <param name="Allowed">The retries the budget allows in the window: a percentage of the requests plus a reserve per second.</param>
public sealed record MeshRetryBudgetStatus(TimeSpan Window, int Requests, int Retries, double Allowed);

/// <summary>The state of one endpoint.</summary>
/// <param name="Id">The stable instance id.</param>
/// <param name="Address">The address requests are sent to.</param>
/// <param name="Weight">The weight.</param>
/// <param name="Zone">The zone, if known.</param>
/// <param name="State">
/// One of <c>healthy</c>, <c>ejected</c> (by outlier detection), <c>unreachable</c> (ejected because it refused a
/// connection), <c>probing</c> (its ejection ended; it gets one probe request).
/// </param>
/// <param name="InFlight">The attempts in flight now, open gRPC streams included.</param>
/// <param name="Attempts">The attempts sent since the endpoint was discovered.</param>
/// <param name="LatencyEstimate">The peak-EWMA latency estimate, or <see langword="null"/> before the first answer.</param>
public sealed record MeshEndpointStatus(string Id, string Address, int Weight, string? Zone, string State, int InFlight, long Attempts, TimeSpan? LatencyEstimate)
{
    /// <summary>
    /// Gets the percentage of its weight the endpoint gets while in slow start (<see cref="SlowStartOptions"/>), or
    /// <see langword="null"/> when it is not in slow start.
    /// </summary>
    public int? SlowStartPercent { get; init; }

    /// <summary>Gets the weight the balancer uses now: <see cref="Weight"/> scaled down while in slow start.</summary>
    public double EffectiveWeight { get; init; }

    /// <summary>Gets the time left in the current ejection, while <see cref="State"/> is <c>ejected</c> or <c>unreachable</c>.</summary>
    public TimeSpan? EjectionTimeLeft { get; init; }

    /// <summary>Gets the attempts sent to the endpoint that ended in the last minute (answered, failed or timed out; cancelled ones are not counted).</summary>
    public int RequestsLastMinute { get; init; }

    /// <summary>Gets those of <see cref="RequestsLastMinute"/> that failed (5xx, 429, timeout, connection failure).</summary>
    public int FailuresLastMinute { get; init; }

    /// <summary>
    /// Gets <c>local</c> when the endpoint is in the caller's zone (its zone, or its Kubernetes <c>hints.forZones</c>,
    /// names it) and <c>remote</c> otherwise, while zone routing applies to the service; <see langword="null"/> otherwise.
    /// </summary>
    public string? Locality { get; init; }
}
