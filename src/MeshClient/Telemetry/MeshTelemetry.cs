namespace MeshClient.Telemetry;

/// <summary>
/// The names under which the mesh reports telemetry. Both the <see cref="System.Diagnostics.ActivitySource"/> and
/// the <see cref="System.Diagnostics.Metrics.Meter"/> are named <see cref="ActivitySourceName"/> = <see cref="MeterName"/> = <c>MeshClient</c>.
/// </summary>
public static class MeshTelemetry
{
    /// <summary>The name of the mesh's <see cref="System.Diagnostics.ActivitySource"/>.</summary>
    public const string ActivitySourceName = "MeshClient";

    /// <summary>The name of the mesh's <see cref="System.Diagnostics.Metrics.Meter"/>.</summary>
    public const string MeterName = "MeshClient";
}
