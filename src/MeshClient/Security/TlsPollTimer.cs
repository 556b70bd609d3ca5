namespace MeshClient.Security;

/// <summary>
/// The timer that polls TLS files (<see cref="MeshTls"/> for <c>Mesh:Tls</c>, and Consul's): started, retimed or
/// stopped as the configuration says, never capturing the execution context of the request that happened to start
/// it. Not thread-safe: its owner calls it under its own lock.
/// </summary>
internal sealed class TlsPollTimer(TimeProvider time) : IDisposable
{
    private ITimer? _timer;
    private TimeSpan _interval;
    private bool _disposed;

    /// <summary>Gets the polling interval, or <see langword="null"/> while nothing is polled.</summary>
    public TimeSpan? Interval => _timer is null ? null : _interval;

    /// <summary>Starts (calling <paramref name="poll"/> every interval), retimes or (with <paramref name="active"/> false) stops the polling.</summary>
    public void Schedule(bool active, TimeSpan interval, Action poll)
    {
        if (!active || _disposed)
        {
            Stop();
            return;
        }

        if (_timer is null)
        {
            var suppressed = ExecutionContext.IsFlowSuppressed();
            if (!suppressed)
            {
                ExecutionContext.SuppressFlow();
            }

            try
            {
                _timer = time.CreateTimer(static s => ((Action)s!)(), poll, interval, interval);
            }
            finally
            {
                if (!suppressed)
                {
                    ExecutionContext.RestoreFlow();
                }
            }
        }
        else if (interval != _interval)
        {
            _timer.Change(interval, interval);
        }

        _interval = interval;
    }

    /// <summary>Stops the polling for good.</summary>
    public void Dispose()
    {
        _disposed = true;
        Stop();
    }

    private void Stop()
    {
        _timer?.Dispose();
        _timer = null;
    }
}
