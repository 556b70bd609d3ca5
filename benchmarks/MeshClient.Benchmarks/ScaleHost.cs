using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using MeshClient.Balancing;
using MeshClient.Discovery;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Benchmarks;

/// <summary>
/// The mesh at scale, built as an application builds it: <c>services.AddMesh()</c> over static configuration in memory
/// (<c>Mesh:Services:svc-0000 … svc-0999</c>, 20 endpoints each), a real <see cref="IHttpClientFactory"/> client whose
/// primary handler answers from memory, and every service used through that client.
/// </summary>
internal sealed class ScaleMesh : IAsyncDisposable
{
    /// <summary>The client every call goes through.</summary>
    public const string ClientName = "scale";

    private ScaleMesh(ServiceProvider provider, MutableConfigurationProvider configuration, WatchedDiscovery discovery, int services, int endpoints)
    {
        Provider = provider;
        Configuration = configuration;
        Discovery = discovery;
        ServiceCount = services;
        EndpointCount = endpoints;
        Client = provider.GetRequiredService<IHttpClientFactory>().CreateClient(ClientName);
        Registry = provider.GetRequiredService<ServiceTableRegistry>();
    }

    public ServiceProvider Provider { get; }

    /// <summary>Gets the configuration the services are listed in (it can change one key and reload).</summary>
    public MutableConfigurationProvider Configuration { get; }

    /// <summary>Gets the discovery source with a change token per service (as Consul's and Kubernetes' watches have).</summary>
    public WatchedDiscovery Discovery { get; }

    public HttpClient Client { get; }

    public ServiceTableRegistry Registry { get; }

    public int ServiceCount { get; }

    public int EndpointCount { get; }

    public static string ServiceName(int service) => "svc-" + service.ToString("D4", CultureInfo.InvariantCulture);

    /// <summary>A distinct private address per endpoint: 10.{s / 250}.{s % 250}.{j + 1}.</summary>
    public static string Address(int service, int endpoint) =>
        string.Create(CultureInfo.InvariantCulture, $"http://10.{service / 250}.{service % 250}.{endpoint + 1}:8080");

    /// <summary>The configuration of <paramref name="services"/> services of <paramref name="endpoints"/> endpoints each.</summary>
    public static Dictionary<string, string?> Settings(int services, int endpoints)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        for (var s = 0; s < services; s++)
        {
            var prefix = "Mesh:Services:" + ServiceName(s) + ":Endpoints:";
            for (var j = 0; j < endpoints; j++)
            {
                settings[prefix + j.ToString(CultureInfo.InvariantCulture) + ":Address"] = Address(s, j);
            }
        }

        return settings;
    }

    /// <summary>Builds the container (nothing resolved yet: no table, no options bound).</summary>
    /// <param name="configuration">The configuration (from <see cref="Settings"/>, plus anything else).</param>
    /// <param name="services">How many services it lists.</param>
    /// <param name="endpoints">How many endpoints each has.</param>
    /// <param name="watched">Whether to add the <see cref="WatchedDiscovery"/> source (not for the memory figures).</param>
    public static ScaleMesh Build(MutableConfigurationProvider configuration, int services, int endpoints, bool watched)
    {
        var discovery = new WatchedDiscovery();
        var collection = new ServiceCollection();
        collection.AddSingleton<IConfiguration>(new ConfigurationRoot([configuration]));
        collection.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
        collection.AddMesh();
        if (watched)
        {
            // After AddMesh: the mesh's own configuration provider is asked first and leaves the services it does not list.
            collection.AddSingleton<IServiceEndpointProviderFactory>(discovery);
        }

        collection.AddHttpClient(ClientName).ConfigurePrimaryHttpMessageHandler(() => new InMemoryHandler());
        return new ScaleMesh(collection.BuildServiceProvider(), configuration, discovery, services, endpoints);
    }

    /// <summary>
    /// Sends <paramref name="calls"/> calls to every service through the client, then, with <paramref name="everyEndpoint"/>,
    /// more until every endpoint has been picked, completed and judged by outlier detection at least once (the
    /// default policy prefers endpoints it has not measured, so a few calls more than endpoints usually do).
    /// </summary>
    public async Task UseEveryServiceAsync(int calls, bool everyEndpoint = false)
    {
        for (var s = 0; s < ServiceCount; s++)
        {
            var uri = new Uri("http://" + ServiceName(s) + "/items/42");
            var table = Registry.GetTable(ServiceName(s));
            for (var i = 0; i < calls || (everyEndpoint && i < 50 * EndpointCount && table.States.Any(e => e.Health is null)); i++)
            {
                using var response = await Client.GetAsync(uri).ConfigureAwait(false);
                response.EnsureSuccessStatusCode();
            }
        }
    }

    /// <summary>Resolves every service's table and waits for its first snapshot (no call made).</summary>
    public async Task ResolveEveryServiceAsync()
    {
        for (var s = 0; s < ServiceCount; s++)
        {
            await Registry.GetTable(ServiceName(s)).WaitForFirstResolutionAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>Gets the tables of the listed services, in order.</summary>
    public ServiceTable[] Tables() => [.. Enumerable.Range(0, ServiceCount).Select(s => Registry.GetTable(ServiceName(s)))];

    public ValueTask DisposeAsync() => Provider.DisposeAsync();
}

/// <summary>
/// An in-memory configuration whose keys can be set and removed, then reloaded as a file provider reloads (the
/// memory provider has no removal).
/// </summary>
internal sealed class MutableConfigurationProvider(Dictionary<string, string?> initial) : ConfigurationProvider
{
    // Takes the dictionary as it is (no copy): the memory figures count it once. Its comparer must ignore case.
    public override void Load() => Data = initial;

    public void SetKey(string key, string value) => Data[key] = value;

    public void RemoveKey(string key) => Data.Remove(key);

    /// <summary>Fires the reload token, as a changed file would.</summary>
    public void Reload() => OnReload();
}

/// <summary>
/// A discovery source that knows its services from memory and gives each its own change token, fired when that
/// service changes (as the Consul and Kubernetes watches do): a change reaches one service's table, not every table.
/// </summary>
internal sealed class WatchedDiscovery : IServiceEndpointProviderFactory
{
    private readonly ConcurrentDictionary<string, Entry> _services = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Sets the endpoints of a service and fires its change token.</summary>
    public void Set(string service, IReadOnlyList<string> addresses)
    {
        var endpoints = addresses.Select(address =>
        {
            var features = new FeatureCollection();
            features.Set<IMeshEndpointFeature>(new MeshEndpointFeature(address, 1, null));
            return ServiceEndpoint.Create(new UriEndPoint(new Uri(address)), features);
        }).ToArray();
        Set(service, endpoints);
    }

    /// <summary>Sets the endpoints of a service (built by the caller) and fires its change token.</summary>
    public void Set(string service, ServiceEndpoint[] endpoints)
    {
        var next = new Entry(endpoints, new CancellationTokenSource());
        var previous = _services.TryGetValue(service, out var old) ? old : null;
        _services[service] = next;
        previous?.Changed.Cancel();
    }

    public bool TryCreateProvider(ServiceEndpointQuery query, [NotNullWhen(true)] out IServiceEndpointProvider? provider)
    {
        provider = new Provider(this, query.ServiceName);
        return true;
    }

    private sealed record Entry(ServiceEndpoint[] Endpoints, CancellationTokenSource Changed);

    private sealed class Provider(WatchedDiscovery owner, string service) : IServiceEndpointProvider
    {
        private static readonly MeshServiceFeature Feature = new("benchmark watch");

        public ValueTask PopulateAsync(IServiceEndpointBuilder endpoints, CancellationToken cancellationToken)
        {
            if (endpoints.Endpoints.Count != 0 || !owner._services.TryGetValue(service, out var entry))
            {
                return default;
            }

            endpoints.AddChangeToken(new CancellationChangeToken(entry.Changed.Token));
            endpoints.Features.Set<IMeshServiceFeature>(Feature);
            foreach (var endpoint in entry.Endpoints)
            {
                endpoints.Endpoints.Add(endpoint);
            }

            return default;
        }

        public ValueTask DisposeAsync() => default;
    }
}
