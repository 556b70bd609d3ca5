namespace MeshClient.Configuration;

/// <summary>
/// One route of a service, bound from <c>Mesh:Services:{name}:Routes:{i}</c>: which requests it takes
/// (<see cref="Match"/>) and the services it sends them to (<see cref="Backends"/>, a weighted split). A service's
/// routes are tried in order and the first that matches wins; a request that none matches fails with
/// <see cref="NoMatchingRouteException"/> before a byte is sent. Reloadable: a valid change applies to the next call.
/// </summary>
public sealed class MeshRouteOptions
{
    /// <summary>The most backends a route may have.</summary>
    public const int MaxBackends = 16;

    /// <summary>
    /// Gets or sets the name of the route, unique within its service: it tags the call's span and metrics
    /// (<c>mesh.route</c>) and names the route on the status page. Default: the route's index (<c>0</c>, <c>1</c>, …).
    /// </summary>
    public string? Name { get; set; }

    /// <summary>
    /// Gets or sets which requests the route takes; every condition set must hold. Default: <see langword="null"/>,
    /// which matches every request (the last route of a service usually has none).
    /// </summary>
    public MeshRouteMatchOptions? Match { get; set; }

    /// <summary>
    /// Gets the services the route sends its requests to, each with a <see cref="MeshRouteBackendOptions.Weight"/>:
    /// a call goes to one of them with a probability proportional to its weight, among the backends that have a
    /// healthy endpoint. At least one, at most <see cref="MaxBackends"/>.
    /// </summary>
    public IList<MeshRouteBackendOptions> Backends { get; } = new List<MeshRouteBackendOptions>();

    /// <summary>
    /// Gets or sets the total timeout of the calls the route takes (an HTTPRoute's request timeout), retries included:
    /// it bounds the backend's own <c>TotalTimeout</c> and <c>AttemptTimeout</c> for those calls (the shorter wins).
    /// Default: <see langword="null"/>, the backend's. Valid: 10 ms to 1 h.
    /// </summary>
    public TimeSpan? Timeout { get; set; }

    /// <summary>
    /// Gets the hedging of the calls the route takes (<c>Mesh:Services:{name}:Routes:{i}:Hedging:*</c>, the keys of
    /// <see cref="MeshHedgingOptions"/>): each value set here wins over the backend service's
    /// (<c>Mesh:Services:{backend}:Resilience:Hedging</c>), then the global one, field by field. A route that sets any
    /// value hedges with a budget and, for an adaptive delay, a latency estimate of its own per backend (its requests are
    /// a population of their own: a search route is not the service's average). Default: nothing set, the calls hedge
    /// as their backend's do.
    /// </summary>
    public MeshHedgingOptions Hedging { get; } = new();
}
