using MeshClient.Configuration;
using MeshClient.Discovery;
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
    private readonly WatchRegistry<KubernetesServiceName, KubernetesServiceWatch> _watches;
    private readonly KubernetesApiClient _client;
    private readonly IDisposable? _optionsSubscription;

    public KubernetesWatchCache(KubernetesApiClient client, Randomizer random, LastValidOptions<KubernetesOptions> options, ILogger<KubernetesWatchCache> logger)
    {
        _client = client;
        _watches = new(
            service =>
            {
                var watch = new KubernetesServiceWatch(service, client, random, logger);
                watch.Start();
                return watch;
            },
            client.TimeProvider,
            () => client.Options.WatchIdleTimeout);
        _optionsSubscription = ChangeToken.OnChange(options.GetChangeToken, RepublishAll);
    }

    public KubernetesApiClient Client => _client;

    /// <summary>Gets the number of running watches.</summary>
    public int Count => _watches.Count;

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

    public KubernetesServiceWatch? Find(KubernetesServiceName service) => _watches.Find(service);

    public KubernetesServiceWatch Acquire(KubernetesServiceName service) => _watches.Acquire(service);

    public void Release(KubernetesServiceWatch watch) => _watches.Release(watch.Service, watch);

    private void RepublishAll()
    {
        foreach (var watch in _watches.Watches())
        {
            if (watch.State.HasAnswer)
            {
                watch.Publish();
            }
        }
    }

    public void Dispose()
    {
        _optionsSubscription?.Dispose();
        _watches.Dispose();
    }
}
