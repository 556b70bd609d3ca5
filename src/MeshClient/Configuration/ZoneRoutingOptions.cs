namespace MeshClient.Configuration;

/// <summary>
/// Load-aware zone routing, bound from <c>Mesh:ZoneRouting</c> (every service) and
/// <c>Mesh:Services:{name}:ZoneRouting</c> (one service; a value left unset takes the global one, and unset globally
/// takes the default shown). While the caller's zone (<see cref="MeshOptions.Zone"/>) has healthy endpoints, calls stay
/// in it; when its calls take longer than those sent to other zones — the zone's mean answer time over the other
/// zones', measured on the service's own calls — a share of the calls that grows with that ratio goes to every zone
/// (the service's policy then chooses among all endpoints), and comes back as the ratio falls. A zone with no healthy
/// endpoint sends every call elsewhere at once.
/// </summary>
public sealed class ZoneRoutingOptions
{
    /// <summary>Gets the default <see cref="SpillStartRatio"/>.</summary>
    public const double DefaultSpillStartRatio = 2.5;

    /// <summary>Gets the default <see cref="SpillFullRatio"/>.</summary>
    public const double DefaultSpillFullRatio = 5.0;

    /// <summary>
    /// Gets or sets a value indicating whether calls prefer endpoints in the caller's zone. Default: on when
    /// <see cref="MeshOptions.Zone"/> is set (or the <c>MESH_ZONE</c> environment variable), off otherwise (there is
    /// no zone to prefer).
    /// </summary>
    public bool? Enabled { get; set; }

    /// <summary>
    /// Gets or sets the ratio of the local zone's mean answer time to the other zones' above which calls begin to
    /// leave the zone. Default: 2.5. Valid: 1 to 100.
    /// </summary>
    public double? SpillStartRatio { get; set; }

    /// <summary>
    /// Gets or sets the ratio at which every call ignores zones (the service's policy picks among all endpoints);
    /// between <see cref="SpillStartRatio"/> and this, the share of calls that do grows in proportion. Default: 5.0.
    /// Valid: 1 to 1000, above <see cref="SpillStartRatio"/> (when only that one is set, this one follows it).
    /// </summary>
    public double? SpillFullRatio { get; set; }
}
