using System.Collections.Concurrent;
using MeshClient.Discovery;
using System.Diagnostics.Metrics;
using MeshClient.Internal;
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

    private readonly ConcurrentDictionary<string, ServiceTable> _tables = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lock _createLock = new();
    private bool _disposed;
    private volatile Security.EndpointAddressFilter? _addressFilter;
    private readonly IDisposable _optionsSubscription;
    private string _allowedKey;

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
        Logger = logger;
        ProviderNames = [.. providerFactories.Select(DescribeProvider).Distinct()];

        // Discovery sources other than configuration do not change with the options: re-filter their endpoints
        // when the allowed networks or names change.
        _allowedKey = AllowedKey(options.Current);
        _optionsSubscription = Microsoft.Extensions.Primitives.ChangeToken.OnChange(options.GetChangeToken, OnOptionsChanged);
    }

    private static string AllowedKey(MeshOptions options) =>
        string.Join('\n', options.AllowedNetworks) + "\n\n" + string.Join('\n', options.AllowedHostNames);

    private void OnOptionsChanged()
    {
        var key = AllowedKey(Options.Current);
        if (Interlocked.Exchange(ref _allowedKey, key) == key)
        {
            return;
        }

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

    public ILogger Logger { get; }

    public IEndpointHealthObserver? HealthObserver { get; }

    public MeshInstrumentation Telemetry { get; }

    /// <summary>Gets the discovery providers, in the order they are asked, for error messages.</summary>
    public IReadOnlyList<string> ProviderNames { get; }

    public ICollection<ServiceTable> Tables => _tables.Values;

    public ServiceTable GetTable(string host) =>
        _tables.TryGetValue(host, out var table) ? table : CreateTable(host);

    private ServiceTable CreateTable(string host)
    {
        lock (_createLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_tables.TryGetValue(host, out var table))
            {
                table = new ServiceTable(this, host);
                _tables[host] = table;
            }

            return table;
        }
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

    private static string DescribeProvider(IServiceEndpointProviderFactory factory)
    {
        if (factory is MeshConfigurationEndpointProviderFactory)
        {
            return MeshConfigurationEndpointProviderFactory.ProviderName;
        }

        var name = factory.ToString();
        var typeName = factory.GetType().Name;
        if (name is null || name == factory.GetType().FullName)
        {
            name = typeName switch
            {
                "ConfigurationServiceEndpointProviderFactory" => "configuration (Services)",
                "PassThroughServiceEndpointProviderFactory" => "pass-through",
                _ => typeName.Replace("ServiceEndpointProviderFactory", string.Empty, StringComparison.Ordinal),
            };
        }

        return name;
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
