using MeshClient.Model;

namespace MeshClient.Balancing;

/// <summary>
/// The weights of a snapshot while any of its endpoints is in slow start (each scaled by its ramp), and the one-shot
/// timer that rebuilds the snapshot every <see cref="SlowStartRamp.Step"/> while one ramps: the picks stay lock- and
/// allocation-free and never read the clock for it.
/// </summary>
/// <param name="time">The clock.</param>
/// <param name="rebuild">Rebuilds the snapshot (called by the timer).</param>
internal sealed class SlowStartWeights(TimeProvider time, Action rebuild) : IDisposable
{
    internal const int Scale = 1000; // keeps the ramp's resolution in integers
    private ITimer? _timer;
    private bool _disposed;

    /// <summary>
    /// The weights of <paramref name="active"/>, all scaled by 1000, or <see langword="null"/> for the discovered
    /// weights (nobody ramps). Call under the lock that serialises rebuilds.
    /// </summary>
    /// <param name="active">The endpoints that take traffic.</param>
    /// <param name="ramp">The service's slow start.</param>
    public long[]? Compute(EndpointEntry[] active, SlowStartRamp ramp)
    {
        long[]? weights = null;
        var now = time.GetTimestamp();
        for (var i = 0; i < active.Length; i++)
        {
            var since = active[i].State.SlowStartSince;
            if (since == 0)
            {
                continue;
            }

            var factor = ramp.Factor(time.GetElapsedTime(since, now));
            if (factor >= 1.0)
            {
                active[i].State.SlowStartSince = 0; // ramped (or slow start is off)
                continue;
            }

            if (weights is null)
            {
                weights = new long[active.Length];
                for (var j = 0; j < active.Length; j++)
                {
                    weights[j] = (long)active[j].Weight * Scale;
                }
            }

            weights[i] = Math.Max(1, (long)Math.Round(active[i].Weight * Scale * factor));
        }

        if (weights is not null && !_disposed)
        {
            _timer ??= time.CreateTimer(static s => ((SlowStartWeights)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _timer.Change(ramp.Step, Timeout.InfiniteTimeSpan);
        }

        return weights;
    }

    private void OnTimer() => rebuild();

    /// <summary>Stops the timer; call under the lock that serialises rebuilds.</summary>
    public void Dispose()
    {
        _disposed = true;
        _timer?.Dispose();
    }
}
