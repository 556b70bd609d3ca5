using MeshClient.Balancing;
using MeshClient.Resilience;
using MeshClient.Security;

namespace MeshClient.Configuration;

/// <summary>
/// Per-service options, bound from <c>Mesh:Services:{name}</c>.
/// </summary>
public sealed class MeshServiceOptions
{
    /// <summary>
    /// Gets or sets the load-balancing policy of this service. When <see langword="null"/>, the global
    /// <see cref="MeshOptions.LoadBalancer"/> applies.
    /// </summary>
    public string? LoadBalancer { get; set; }

    /// <summary>
    /// Gets the static endpoints of this service (<c>Mesh:Services:{name}:Endpoints:{i}</c>).
    /// </summary>
    public IList<MeshEndpointOptions> Endpoints { get; } = new List<MeshEndpointOptions>();

    /// <summary>
    /// Gets the outlier detection, retry and timeout settings of this service
    /// (<c>Mesh:Services:{name}:Resilience</c>); unset values take the global ones.
    /// </summary>
    public MeshResilienceOptions Resilience { get; } = new();

    /// <summary>
    /// Gets the slow start of this service (<c>Mesh:Services:{name}:SlowStart</c>); unset values take the global
    /// <see cref="MeshOptions.SlowStart"/> ones.
    /// </summary>
    public MeshClient.Configuration.SlowStartOptions SlowStart { get; } = new();

    /// <summary>
    /// Gets the zone routing of this service (<c>Mesh:Services:{name}:ZoneRouting</c>); unset values take the global
    /// <see cref="MeshOptions.ZoneRouting"/> ones.
    /// </summary>
    public ZoneRoutingOptions ZoneRouting { get; } = new();

    /// <summary>
    /// Gets the deadline propagation of calls to this service (<c>Mesh:Services:{name}:Deadlines</c>); unset values take
    /// the global <see cref="MeshOptions.Deadlines"/> ones.
    /// </summary>
    public MeshDeadlineOptions Deadlines { get; } = new();

    /// <summary>
    /// Gets the tuning of the <see cref="LoadBalancerNames.WeightedRoundRobin"/> policy for this service
    /// (<c>Mesh:Services:{name}:WeightedRoundRobin</c>); unset values take the global
    /// <see cref="MeshOptions.WeightedRoundRobin"/> ones.
    /// </summary>
    public WeightedRoundRobinOptions WeightedRoundRobin { get; } = new();

    /// <summary>
    /// Gets the TLS of calls to this service's endpoints (<c>Mesh:Services:{name}:Tls</c>); unset values take the
    /// global <see cref="MeshOptions.Tls"/> ones.
    /// </summary>
    public MeshTlsOptions Tls { get; } = new();

    /// <summary>
    /// Gets the routes of this service (<c>Mesh:Services:{name}:Routes</c>), in order: the first whose
    /// <see cref="MeshRouteOptions.Match"/> holds sends the call to one of its backends. Empty (the default): calls go
    /// to this service's own endpoints.
    /// </summary>
    public IList<MeshRouteOptions> Routes { get; } = new List<MeshRouteOptions>();
}
