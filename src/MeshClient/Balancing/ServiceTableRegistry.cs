using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Model;
using MeshClient.Security;
using MeshClient.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Balancing;

/// <summary>
/// The singleton that owns one <see cref="ServiceTable"/> per host the mesh has seen. Tables of services that are
/// no longer called are evicted after <see cref="IdleTimeout"/>, so nothing grows without bound.
/// </summary>
internal sealed class ServiceTableRegistry : IDisposable
{
    internal static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(5);
    internal static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(10);

    /// <summary>The most dotted host names remembered as unknown to every provider (hosts outside the mesh).</summary>
    internal const int MaxExternalHosts = 1024;

    private readonly ConcurrentDictionary<string, ServiceTable> _tables = new(StringComparer.OrdinalIgnoreCase);

    // Dotted names that no provider knows, with the timestamp of the last lookup that said so: a bounded negative
    // cache instead of a table (and its timer) per host, so that a client calling thousands of outside hosts holds
    // nothing per host beyond this entry.
    private readonly ConcurrentDictionary<string, long> _external = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lock _createLock = new();
    private bool _disposed;
    private volatile Security.EndpointAddressFilter? _addressFilter;
    private readonly IDisposable _optionsSubscription;

    public ServiceTableRegistry(
        ServiceEndpointResolver resolver,
        IEnumerable<IServiceEndpointProviderFactory> providerFactories,
        MeshOptionsChangeNotifier options,
        TimeProvider timeProvider,
        Randomizer random,
        ILogger<ServiceTableRegistry> logger,
        MeshInstrumentation telemetry,
        IEndpointHealthObserver? healthObserver = null)
    {
        HealthObserver = healthObserver;
        Telemetry = telemetry;
        telemetry.ObserveEndpoints(ObserveEndpoints);
        Resolver = resolver;
        Options = options;
        TimeProvider = timeProvider;
        Random = random;
        Picker = new EndpointPicker(random, timeProvider, telemetry);
        Logger = logger;
        ProviderNames = [.. providerFactories.Select(ProviderDescription.Describe).Distinct()];

        // A reload looks every service up again: its endpoints, filters and policy may have changed (see OnOptionsChanged).
        _optionsSubscription = Microsoft.Extensions.Primitives.ChangeToken.OnChange(options.GetChangeToken, OnOptionsChanged);
    }

    private void OnOptionsChanged()
    {
        // A reload may make a dotted name known (Mesh:Services:{name}): look them up again at their next call.
        _external.Clear();

        // Every table is looked up again, not only when the allowed networks or names changed: a service idle longer
        // than the resolver keeps its watcher (two 10 s cleanups) lost the watcher's change token with it, and would
        // keep its old endpoints until a call and the tick after it. A lookup that finds nothing changed allocates
        // nothing (benchmarks/results/scale.md).
        foreach (var table in _tables.Values)
        {
            _ = table.RefreshAsync();
        }
    }

    /// <summary>
    /// Gets the endpoint address filter of the last valid options (built once per options instance, read when an
    /// endpoint set is built).
    /// </summary>
    public Security.EndpointAddressFilter GetAddressFilter()
    {
        var current = Options.Current;
        var filter = _addressFilter;
        if (filter is null || !ReferenceEquals(filter.Options, current))
        {
            filter = Security.EndpointAddressFilter.Create(current);
            _addressFilter = filter;
        }

        return filter;
    }

    public ServiceEndpointResolver Resolver { get; }

    public MeshOptionsChangeNotifier Options { get; }

    public TimeProvider TimeProvider { get; }

    public Randomizer Random { get; }

    /// <summary>Gets the picker of every service's attempts.</summary>
    public EndpointPicker Picker { get; }

    public ILogger Logger { get; }

    public IEndpointHealthObserver? HealthObserver { get; }

    public MeshInstrumentation Telemetry { get; }

    /// <summary>Gets the discovery providers, in the order they are asked, for error messages.</summary>
    public IReadOnlyList<string> ProviderNames { get; }

    public ICollection<ServiceTable> Tables => _tables.Values;

    /// <summary>Gets the number of dotted host names remembered as outside the mesh (diagnostics and tests).</summary>
    internal int ExternalHostCount => _external.Count;

    public ServiceTable GetTable(string host) =>
        _tables.TryGetValue(host, out var table) ? table : CreateTable(host);

    /// <summary>Gets the table of <paramref name="host"/> if it has one, without making one (off the hot path).</summary>
    public ServiceTable? FindTable(string host) => _tables.TryGetValue(host, out var table) ? table : null;

    /// <summary>
    /// Says whether <paramref name="host"/> is a dotted name that discovery recently found nobody knows, so that the
    /// request passes through without a table. The hot path of such a host is one dictionary read. An entry older
    /// than <see cref="RefreshInterval"/> still answers, and starts one lookup in the background (a table that
    /// lives until discovery answers): a name that a provider has come to know is balanced within seconds.
    /// </summary>
    public bool IsExternal(string host)
    {
        if (!_external.TryGetValue(host, out var since))
        {
            return false;
        }

        var now = TimeProvider.GetTimestamp();
        if (TimeProvider.GetElapsedTime(since, now) >= RefreshInterval && _external.TryUpdate(host, now, since) && !_tables.ContainsKey(host))
        {
            try
            {
                _ = CreateTable(host);
            }
            catch (ObjectDisposedException)
            {
                // The host is shutting down: the request passes through as before.
            }
        }

        return true;
    }

    private ServiceTable CreateTable(string host)
    {
        lock (_createLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_tables.TryGetValue(host, out var table))
            {
                table = new ServiceTable(this, host);

                // The first lookup may have ended inside the constructor (a synchronous resolver) and found that nobody
                // knows the name: the table is then not kept (see OnResolved).
                if (table.IsDiscarded)
                {
                    table.Dispose();
                }
                else
                {
                    _tables[host] = table;
                }
            }

            return table;
        }
    }

    /// <summary>
    /// Called after each lookup of a table. A dotted name that nobody knows is a host outside the mesh: it is
    /// remembered in the negative cache and its table (and timer) let go at once; one that became known leaves it.
    /// </summary>
    internal void OnResolved(ServiceTable table)
    {
        if (table.IsSingleLabel)
        {
            return;
        }

        if (table.Resolution != ServiceResolution.Unknown)
        {
            _external.TryRemove(table.ServiceName, out _);
            return;
        }

        lock (_createLock)
        {
            if (_disposed)
            {
                return;
            }

            if (_external.Count >= MaxExternalHosts && !_external.ContainsKey(table.ServiceName))
            {
                // Bounded: the least cost of a full cache is one more lookup per host, not memory without end.
                _external.Clear();
            }

            _external[table.ServiceName] = TimeProvider.GetTimestamp();
            if (!((ICollection<KeyValuePair<string, ServiceTable>>)_tables).Remove(new(table.ServiceName, table)))
            {
                // Not added yet: the lookup ended inside the constructor, and CreateTable disposes it.
                table.IsDiscarded = true;
                return;
            }
        }

        // Not HealthObserver.OnServiceRemoved: the calls to the host keep their resilience (budget, pipelines).
        table.Dispose();
    }

    internal void Evict(ServiceTable table)
    {
        if (((ICollection<KeyValuePair<string, ServiceTable>>)_tables).Remove(new(table.ServiceName, table)))
        {
            table.Dispose();
            HealthObserver?.OnServiceRemoved(table.ServiceName);
        }
    }

    private IEnumerable<Measurement<long>> ObserveEndpoints()
    {
        foreach (var table in _tables.Values)
        {
            if (table.Snapshot is not { } snapshot)
            {
                continue;
            }

            long healthy = 0, ejected = 0, probing = 0;
            foreach (var entry in snapshot.All)
            {
                switch (entry.State.Status)
                {
                    case EndpointStatus.Healthy: healthy++; break;
                    case EndpointStatus.Ejected: ejected++; break;
                    default: probing++; break;
                }
            }

            var service = new KeyValuePair<string, object?>(MeshTags.Service, table.ServiceName);
            yield return new Measurement<long>(healthy, service, new KeyValuePair<string, object?>(MeshTags.EndpointState, "healthy"));
            yield return new Measurement<long>(ejected, service, new KeyValuePair<string, object?>(MeshTags.EndpointState, "ejected"));
            yield return new Measurement<long>(probing, service, new KeyValuePair<string, object?>(MeshTags.EndpointState, "probing"));
        }
    }

    public void Dispose()
    {
        lock (_createLock)
        {
            _disposed = true;
        }

        _optionsSubscription.Dispose();
        foreach (var table in _tables.Values)
        {
            table.Dispose();
        }

        _tables.Clear();
    }
}
