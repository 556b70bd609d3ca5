using MeshClient.Model;

namespace MeshClient.Balancing;

/// <summary>
/// The weights of a <see cref="WeightedRoundRobinPolicy"/> snapshot, and the one-shot timer that rebuilds the snapshot
/// every <see cref="WeightedRoundRobinPolicy.UpdatePeriod"/> while the service uses that policy, so the weights follow
/// the endpoints' reports while the pick stays as it is (the pattern of <see cref="SlowStartWeights"/>).
/// </summary>
/// <param name="time">The clock.</param>
/// <param name="rebuild">Rebuilds the snapshot (called by the timer).</param>
internal sealed class LoadReportWeights(TimeProvider time, Action rebuild) : IDisposable
{
    private ITimer? _timer;
    private bool _disposed;

    /// <summary>
    /// The weights of <paramref name="active"/> under <paramref name="policy"/>: <paramref name="slowStart"/> unless the
    /// policy weighs by load reports. Call under the lock that serialises rebuilds.
    /// </summary>
    /// <param name="active">The endpoints that take traffic.</param>
    /// <param name="policy">The service's policy.</param>
    /// <param name="slowStart">The weights of slow start, or <see langword="null"/> for the configured ones.</param>
    public long[]? Compute(EndpointEntry[] active, LoadBalancingPolicy policy, long[]? slowStart)
    {
        if (policy is not WeightedRoundRobinPolicy weighted)
        {
            _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            return slowStart;
        }

        if (!_disposed)
        {
            _timer ??= time.CreateTimer(static s => ((LoadReportWeights)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _timer.Change(weighted.UpdatePeriod, Timeout.InfiniteTimeSpan);
        }

        return weighted.Weights(active, slowStart);
    }

    private void OnTimer() => rebuild();

    /// <summary>Stops the timer; call under the lock that serialises rebuilds.</summary>
    public void Dispose()
    {
        _disposed = true;
        _timer?.Dispose();
    }
}
