using MeshClient.Configuration;

namespace MeshClient.Balancing;

/// <summary>The effective zone routing of one service (<see cref="ZoneRoutingOptions"/> resolved, with the caller's zone).</summary>
/// <param name="Zone">The caller's zone.</param>
/// <param name="SpillStartRatio">The latency ratio (local over remote) at which calls begin to leave the zone.</param>
/// <param name="SpillFullRatio">The ratio at which every call ignores zones.</param>
internal sealed record ZoneRoutingSettings(string Zone, double SpillStartRatio, double SpillFullRatio)
{
    /// <summary>
    /// The zone routing of a service, or <see langword="null"/> when it is off: no caller zone (<c>Mesh:Zone</c>,
    /// <c>MESH_ZONE</c>), or <c>Enabled: false</c> for the service or globally. A ratio set at one level and not the
    /// other is not a contradiction: when the full-spill ratio would not be above the start, it follows the start at
    /// the default distance.
    /// </summary>
    public static ZoneRoutingSettings? Resolve(MeshOptions options, MeshServiceOptions? service)
    {
        if (options.Zone is not { Length: > 0 } zone
            || !(service?.ZoneRouting.Enabled ?? options.ZoneRouting.Enabled ?? true))
        {
            return null;
        }

        var start = service?.ZoneRouting.SpillStartRatio ?? options.ZoneRouting.SpillStartRatio ?? ZoneRoutingOptions.DefaultSpillStartRatio;
        var full = service?.ZoneRouting.SpillFullRatio ?? options.ZoneRouting.SpillFullRatio ?? ZoneRoutingOptions.DefaultSpillFullRatio;
        if (full <= start)
        {
            full = start * ZoneRoutingOptions.DefaultSpillFullRatio / ZoneRoutingOptions.DefaultSpillStartRatio;
        }

        return new ZoneRoutingSettings(zone, start, full);
    }

    /// <summary>
    /// The share of calls that leave the zone for a latency <paramref name="ratio"/>: 0 up to
    /// <see cref="SpillStartRatio"/>, rising in proportion to 1 at <see cref="SpillFullRatio"/>.
    /// </summary>
    public double SpillFor(double ratio) => Math.Clamp((ratio - SpillStartRatio) / (SpillFullRatio - SpillStartRatio), 0, 1);
}
