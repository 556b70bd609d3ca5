using MeshClient.Configuration;
using MeshClient.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace MeshClient.Kubernetes;

/// <summary>
/// The singleton that owns one <see cref="KubernetesServiceWatch"/> per Kubernetes service in use. Discovery
/// providers are thin views over it: a provider acquires the watch of its service on first use and releases it when
/// disposed (the resolver disposes the providers of a service that nothing has asked for in a while). A watch with
/// no user for <see cref="KubernetesOptions.WatchIdleTimeout"/> ends. A reload of the options re-reads the routable
/// set of every watch (a changed <c>PortName</c> applies at once).
/// </summary>
internal sealed class KubernetesWatchCache : IDisposable
{
    private readonly Dictionary<KubernetesServiceName, KubernetesServiceWatch> _watches = [];
    private readonly Lock _lock = new();
    private readonly KubernetesApiClient _client;
    private readonly Randomizer _random;
    private readonly ILogger _logger;
    private readonly IDisposable? _optionsSubscription;
    private bool _disposed;

    public KubernetesWatchCache(KubernetesApiClient client, Randomizer random, LastValidOptions<KubernetesOptions> options, ILogger<KubernetesWatchCache> logger)
    {
        _client = client;
        _random = random;
        _logger = logger;
        _optionsSubscription = ChangeToken.OnChange(options.GetChangeToken, RepublishAll);
    }

    public KubernetesApiClient Client => _client;

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

    /// <summary>Whether <paramref name="host"/> names a Kubernetes Service, and which.</summary>
    public bool TryParse(string host, out KubernetesServiceName service)
    {
        var options = _client.Options;
        service = default;

        // Cheap checks first: the default namespace may need a file read (once).
        return !string.IsNullOrEmpty(host)
            && KubernetesServiceName.TryParse(host, "default", options.ClusterDomain, out service)
            && (host.Contains('.', StringComparison.Ordinal)
                || KubernetesServiceName.TryParse(host, _client.DefaultNamespace, options.ClusterDomain, out service));
    }

    public KubernetesServiceWatch? Find(KubernetesServiceName service)
    {
        lock (_lock)
        {
            return _watches.GetValueOrDefault(service);
        }
    }

    public KubernetesServiceWatch Acquire(KubernetesServiceName service)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_watches.TryGetValue(service, out var watch))
            {
                watch = new KubernetesServiceWatch(service, _client, _random, _logger);
                _watches[service] = watch;
                watch.Start();
            }

            watch.Users++;
            watch.IdleTimer?.Dispose();
            watch.IdleTimer = null;
            return watch;
        }
    }

    public void Release(KubernetesServiceWatch watch)
    {
        lock (_lock)
        {
            if (_disposed || --watch.Users > 0 || !_watches.TryGetValue(watch.Service, out var current) || current != watch)
            {
                return;
            }

            watch.IdleTimer?.Dispose();
            watch.IdleTimer = _client.TimeProvider.CreateTimer(
                static s => { var (cache, w) = ((KubernetesWatchCache, KubernetesServiceWatch))s!; cache.EndIfIdle(w); },
                (this, watch),
                _client.Options.WatchIdleTimeout,
                Timeout.InfiniteTimeSpan);
        }
    }

    private void EndIfIdle(KubernetesServiceWatch watch)
    {
        lock (_lock)
        {
            if (watch.Users > 0 || !_watches.TryGetValue(watch.Service, out var current) || current != watch)
            {
                return;
            }

            _watches.Remove(watch.Service);
            watch.IdleTimer?.Dispose();
            watch.IdleTimer = null;
        }

        watch.Dispose();
    }

    private void RepublishAll()
    {
        KubernetesServiceWatch[] watches;
        lock (_lock)
        {
            watches = [.. _watches.Values];
        }

        foreach (var watch in watches)
        {
            if (watch.State.HasAnswer)
            {
                watch.Publish();
            }
        }
    }

    public void Dispose()
    {
        KubernetesServiceWatch[] watches;
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
