namespace MeshDemo;

/// <summary>The zones of <c>--zones</c>.</summary>
internal static class DemoZones
{
    public const string CallerZone = "zone-a";

    public const string OtherZone = "zone-b";

    /// <summary>When the caller's zone slows, as a fraction of the run.</summary>
    public const double SlowFrom = 0.5;
}
