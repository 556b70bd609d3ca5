using MeshClient.Configuration;
using MeshClient.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace MeshClient.Consul;

/// <summary>
/// The singleton that owns one <see cref="ConsulServiceWatch"/> per Consul service in use. Discovery providers are
/// thin views over it: a provider acquires the watch of its service on first use and releases it when disposed
/// (the resolver disposes the providers of a service that nothing has asked for in about 10–20 s). A watch with no
/// user for <see cref="ConsulOptions.WatchIdleTimeout"/> ends. A change of the options restarts every watch.
/// </summary>
internal sealed class ConsulCatalogCache : IDisposable
{
    private readonly Dictionary<string, ConsulServiceWatch> _watches = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lock _lock = new();
    private readonly ConsulClient _client;
    private readonly Randomizer _random;
    private readonly ILogger _logger;
    private readonly IDisposable? _optionsSubscription;
    private string _queryKey;
    private bool _disposed;

    public ConsulCatalogCache(ConsulClient client, Randomizer random, LastValidOptions<ConsulOptions> options, ILogger<ConsulCatalogCache> logger)
    {
        _client = client;
        _random = random;
        _logger = logger;
        _queryKey = QueryKey(client.Options);
        _optionsSubscription = ChangeToken.OnChange(options.GetChangeToken, () =>
        {
            // Any valid reload raises this (an invalid one is refused by the holder); only a change of what is asked,
            // or of how answers are read, restarts the watches (each restart is one non-blocking query per service).
            var key = QueryKey(options.Current);
            if (Interlocked.Exchange(ref _queryKey, key) != key)
            {
                RestartAll();
            }
        });
    }

    /// <summary>Gets the number of running watches.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _watches.Count;
            }
        }
    }

    /// <summary>
    /// Whether Consul is asked about <paramref name="serviceName"/>: single-label names only. Dotted names are hosts
    /// outside the mesh (and Consul names with dots cannot be resolved through its DNS either); asking Consul about
    /// every external host would open a blocking query per host.
    /// </summary>
    public static bool Handles(string serviceName) =>
        !string.IsNullOrEmpty(serviceName)
        && serviceName.Length <= 255
        && !serviceName.Contains('.', StringComparison.Ordinal)
        && !string.Equals(serviceName, "localhost", StringComparison.OrdinalIgnoreCase);

    public ConsulServiceWatch? Find(string serviceName)
    {
        lock (_lock)
        {
            return _watches.GetValueOrDefault(serviceName);
        }
    }

    public ConsulServiceWatch Acquire(string serviceName)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_watches.TryGetValue(serviceName, out var watch))
            {
                watch = new ConsulServiceWatch(serviceName, _client, _random, _logger);
                _watches[serviceName] = watch;
                watch.Start();
            }

            watch.Users++;
            watch.IdleTimer?.Dispose();
            watch.IdleTimer = null;
            return watch;
        }
    }

    public void Release(ConsulServiceWatch watch)
    {
        lock (_lock)
        {
            if (_disposed || --watch.Users > 0 || !_watches.TryGetValue(watch.ServiceName, out var current) || current != watch)
            {
                return;
            }

            watch.IdleTimer?.Dispose();
            watch.IdleTimer = _client.TimeProvider.CreateTimer(
                static s => { var (cache, w) = ((ConsulCatalogCache, ConsulServiceWatch))s!; cache.EndIfIdle(w); },
                (this, watch),
                _client.Options.WatchIdleTimeout,
                Timeout.InfiniteTimeSpan);
        }
    }

    private void EndIfIdle(ConsulServiceWatch watch)
    {
        lock (_lock)
        {
            if (watch.Users > 0 || !_watches.TryGetValue(watch.ServiceName, out var current) || current != watch)
            {
                return;
            }

            _watches.Remove(watch.ServiceName);
            watch.IdleTimer?.Dispose();
            watch.IdleTimer = null;
        }

        watch.Dispose();
    }

    private static string QueryKey(ConsulOptions o) => string.Join(
        '\u001f',
        o.Address, o.Token, o.Datacenter, string.Join(',', o.Tags), o.Namespace, o.Partition, o.OnlyPassing, o.Scheme, o.SchemeMetaKey,
        o.ZoneMetaKey, o.Wait, o.MaxResponseBytes);

    private void RestartAll()
    {
        ConsulServiceWatch[] watches;
        lock (_lock)
        {
            watches = [.. _watches.Values];
        }

        foreach (var watch in watches)
        {
            watch.Restart();
        }
    }

    public void Dispose()
    {
        ConsulServiceWatch[] watches;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            watches = [.. _watches.Values];
            _watches.Clear();
        }

        _optionsSubscription?.Dispose();
        foreach (var watch in watches)
        {
            watch.IdleTimer?.Dispose();
            watch.Dispose();
        }
    }
}
