using System.Globalization;
using MeshClient.Configuration;

namespace MeshClient.Balancing;

/// <summary>The effective slow start of one service (<see cref="SlowStartOptions"/> resolved), and its ramp.</summary>
internal readonly record struct SlowStartRamp(TimeSpan Window, double Aggression, int MinWeightPercent)
{
    public bool Enabled => Window > TimeSpan.Zero;

    public static SlowStartRamp Resolve(SlowStartOptions global, SlowStartOptions? service) => new(
        service?.Window ?? global.Window ?? TimeSpan.Zero,
        service?.Aggression ?? global.Aggression ?? SlowStartOptions.DefaultAggression,
        service?.MinWeightPercent ?? global.MinWeightPercent ?? SlowStartOptions.DefaultMinWeightPercent);

    /// <summary>
    /// The fraction of its weight an endpoint gets after <paramref name="elapsed"/> in slow start, or 1 once the
    /// window has passed (Envoy's formula).
    /// </summary>
    public double Factor(TimeSpan elapsed)
    {
        if (!Enabled || elapsed >= Window)
        {
            return 1.0;
        }

        var time = Math.Max(elapsed.TotalSeconds, 1.0) / Window.TotalSeconds;
        return Math.Clamp(Math.Pow(time, 1.0 / Aggression), MinWeightPercent / 100.0, 1.0);
    }

    /// <summary>How often snapshots are rebuilt while an endpoint ramps: 20 steps per window, 100 ms to 5 s apart.</summary>
    public TimeSpan Step => TimeSpan.FromTicks(Math.Clamp(Window.Ticks / 20, TimeSpan.TicksPerMillisecond * 100, TimeSpan.TicksPerSecond * 5));
}
