using MeshClient.Configuration;
using MeshClient.Discovery;
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
    private readonly WatchRegistry<string, ConsulServiceWatch> _watches;
    private readonly IDisposable? _optionsSubscription;
    private string _queryKey;

    public ConsulCatalogCache(ConsulClient client, Randomizer random, LastValidOptions<ConsulOptions> options, ILogger<ConsulCatalogCache> logger)
    {
        _watches = new(
            name =>
            {
                var watch = new ConsulServiceWatch(name, client, random, logger);
                watch.Start();
                return watch;
            },
            client.TimeProvider,
            () => client.Options.WatchIdleTimeout,
            StringComparer.OrdinalIgnoreCase);
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
    public int Count => _watches.Count;

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

    public ConsulServiceWatch? Find(string serviceName) => _watches.Find(serviceName);

    public ConsulServiceWatch Acquire(string serviceName) => _watches.Acquire(serviceName);

    public void Release(ConsulServiceWatch watch) => _watches.Release(watch.ServiceName, watch);

    private static string QueryKey(ConsulOptions o) => string.Join(
        '\u001f',
        o.Address, o.Token, o.Datacenter, string.Join(',', o.Tags), o.Namespace, o.Partition, o.OnlyPassing, o.Scheme, o.SchemeMetaKey,
        o.ZoneMetaKey, o.Wait, o.MaxResponseBytes);

    private void RestartAll()
    {
        foreach (var watch in _watches.Watches())
        {
            watch.Restart();
        }
    }

    public void Dispose()
    {
        _optionsSubscription?.Dispose();
        _watches.Dispose();
    }
}
