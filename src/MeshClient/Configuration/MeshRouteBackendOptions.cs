namespace MeshClient.Configuration;

/// <summary>One backend of a route, bound from <c>Mesh:Services:{name}:Routes:{i}:Backends:{j}</c>.</summary>
public sealed class MeshRouteBackendOptions
{
    /// <summary>The largest valid <see cref="Weight"/> (Gateway API's).</summary>
    public const int MaxWeight = 1_000_000;

    /// <summary>
    /// Gets or sets the mesh service the requests go to, with its own discovery, load balancing and resilience
    /// (<c>Mesh:Services:{Service}</c>). It may be the routed service itself (its own endpoints), but not another
    /// service with routes of its own: routes do not chain.
    /// </summary>
    public string? Service { get; set; }

    /// <summary>
    /// Gets or sets the relative weight of the backend, from 0 to 1,000,000. Default: 1. The weights of a route must
    /// not all be 0. A backend with no healthy endpoint takes no share: its weight goes to the others.
    /// </summary>
    public int Weight { get; set; } = 1;
}
