namespace MeshClient.Discovery;

/// <summary>
/// One endpoint provider's hold on a shared, reference-counted watch of its service (Consul's blocking query,
/// Kubernetes' list-then-watch): taken at the first resolution, given back once when the provider is disposed, never
/// taken after that. Lock-free once taken.
/// </summary>
/// <typeparam name="TWatch">The watch type.</typeparam>
internal sealed class WatchLease<TWatch>(Func<TWatch> acquire, Action<TWatch> release)
    where TWatch : class
{
    private readonly Lock _gate = new();
    private TWatch? _watch;
    private int _disposed;

    /// <summary>Gets the watch, taking it on first use; <see langword="null"/> once released or while the host shuts down.</summary>
    public TWatch? Get()
    {
        var watch = Volatile.Read(ref _watch);
        if (watch is not null)
        {
            return watch;
        }

        lock (_gate)
        {
            if (_watch is null && Volatile.Read(ref _disposed) == 0)
            {
                try
                {
                    Volatile.Write(ref _watch, acquire());
                }
                catch (ObjectDisposedException)
                {
                    // The host is shutting down.
                }
            }

            return _watch;
        }
    }

    /// <summary>Gives the watch back (once).</summary>
    public void Release()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            lock (_gate)
            {
                if (_watch is not null)
                {
                    release(_watch);
                }
            }
        }
    }
}
