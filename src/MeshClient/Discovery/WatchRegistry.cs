namespace MeshClient.Discovery;

/// <summary>
/// The reference-counted set of a provider's running watches, one per service in use (Consul's blocking queries,
/// Kubernetes' list-then-watch): a provider acquires the watch of its service on first use and releases it when
/// disposed; a watch with no user for the idle timeout ends (a provider that comes back within it finds the watch
/// still running and its answer still fresh). Thread-safe; every call takes one short lock, none is on the request path.
/// </summary>
/// <typeparam name="TKey">What names a watched service.</typeparam>
/// <typeparam name="TWatch">The watch: started by <c>start</c>, ended by <see cref="IDisposable.Dispose"/>.</typeparam>
internal sealed class WatchRegistry<TKey, TWatch> : IDisposable
    where TKey : notnull
    where TWatch : class, IDisposable
{
    private readonly Dictionary<TKey, Entry> _entries;
    private readonly Lock _lock = new();
    private readonly Func<TKey, TWatch> _start;
    private readonly TimeProvider _time;
    private readonly Func<TimeSpan> _idleTimeout;
    private bool _disposed;

    /// <summary>Creates the registry.</summary>
    /// <param name="start">Creates and starts the watch of a service (called under the registry's lock).</param>
    /// <param name="time">The clock of the idle timers.</param>
    /// <param name="idleTimeout">How long a watch with no user keeps running (read when its last user leaves).</param>
    /// <param name="comparer">How service keys compare, or <see langword="null"/> for the default.</param>
    public WatchRegistry(Func<TKey, TWatch> start, TimeProvider time, Func<TimeSpan> idleTimeout, IEqualityComparer<TKey>? comparer = null)
    {
        _entries = new Dictionary<TKey, Entry>(comparer);
        _start = start;
        _time = time;
        _idleTimeout = idleTimeout;
    }

    /// <summary>Gets the number of running watches.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>The running watch of <paramref name="key"/>, or <see langword="null"/>.</summary>
    public TWatch? Find(TKey key)
    {
        lock (_lock)
        {
            return _entries.TryGetValue(key, out var entry) ? entry.Watch : null;
        }
    }

    /// <summary>Joins the watch of <paramref name="key"/>, starting it if none runs; stops its idle countdown.</summary>
    /// <exception cref="ObjectDisposedException">The registry was disposed (the host is shutting down).</exception>
    public TWatch Acquire(TKey key)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_entries.TryGetValue(key, out var entry))
            {
                entry = new Entry(key, _start(key));
                _entries[key] = entry;
            }

            entry.Users++;
            entry.IdleTimer?.Dispose();
            entry.IdleTimer = null;
            return entry.Watch;
        }
    }

    /// <summary>Leaves the watch of <paramref name="key"/>: once it has no user, it ends after the idle timeout.</summary>
    public void Release(TKey key, TWatch watch)
    {
        lock (_lock)
        {
            if (_disposed || !_entries.TryGetValue(key, out var entry) || entry.Watch != watch || --entry.Users > 0)
            {
                return;
            }

            entry.IdleTimer?.Dispose();
            entry.IdleTimer = _time.CreateTimer(
                static s => { var (registry, e) = ((WatchRegistry<TKey, TWatch>, Entry))s!; registry.EndIfIdle(e); },
                (this, entry),
                _idleTimeout(),
                Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>The running watches, copied (to restart or republish them outside the lock).</summary>
    public TWatch[] Watches()
    {
        lock (_lock)
        {
            var watches = new TWatch[_entries.Count];
            var i = 0;
            foreach (var entry in _entries.Values)
            {
                watches[i++] = entry.Watch;
            }

            return watches;
        }
    }

    private void EndIfIdle(Entry entry)
    {
        lock (_lock)
        {
            if (entry.Users > 0 || !_entries.TryGetValue(entry.Key, out var current) || current != entry)
            {
                return;
            }

            _entries.Remove(entry.Key);
            entry.IdleTimer?.Dispose();
            entry.IdleTimer = null;
        }

        entry.Watch.Dispose();
    }

    /// <summary>Ends every watch; any later <see cref="Acquire"/> throws.</summary>
    public void Dispose()
    {
        Entry[] entries;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            entries = [.. _entries.Values];
            _entries.Clear();
        }

        foreach (var entry in entries)
        {
            entry.IdleTimer?.Dispose();
            entry.Watch.Dispose();
        }
    }

    /// <summary>A running watch and its users; mutable fields guarded by the registry's lock.</summary>
    private sealed class Entry(TKey key, TWatch watch)
    {
        public TKey Key { get; } = key;

        public TWatch Watch { get; } = watch;

        public int Users { get; set; }

        public ITimer? IdleTimer { get; set; }
    }
}
