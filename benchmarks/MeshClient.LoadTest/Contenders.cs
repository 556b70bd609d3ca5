using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MeshClient.LoadTest;

/// <summary>One way of calling the backends: a client, where it sends, and how it learns of new endpoints (churn).</summary>
public interface IContender : IAsyncDisposable
{
    string Name { get; }

    HttpClient Client { get; }

    Uri RequestUri { get; }

    /// <summary>
    /// Gets the client for the next request: <see cref="Client"/>, or, for a contender that balances in the caller
    /// (<c>rr</c>, <c>factory</c>), the next of its per-endpoint clients in turn.
    /// </summary>
    HttpClient NextClient() => Client;

    /// <summary>Gets the CPU time used so far by the contender's own process outside this one (a sidecar), if any.</summary>
    TimeSpan? SidecarCpuTime();

    /// <summary>Tells the contender's discovery the new endpoint set, the way that contender learns of one.</summary>
    Task UpdateEndpointsAsync(IReadOnlyList<Uri> endpoints);
}

internal static class Contenders
{
    /// <summary>Every request is a GET of this path.</summary>
    public const string Path = "/work";

    /// <summary>The logical service name the mesh and the stock stack resolve.</summary>
    public const string ServiceName = "backend";

    public static async Task<IContender> CreateAsync(string name, ScenarioEnvironment environment, LoadTestOptions options)
    {
        var endpoints = environment.Endpoints;
        switch (name)
        {
            case Contender.Raw:
                return new RawContender(Contender.Raw, endpoints[0], sidecar: null);
            case Contender.Yarp:
                var yarp = environment.Yarp ?? throw new InvalidOperationException("The YARP sidecar is not running.");
                await yarp.UpdateAsync(endpoints);
                return new RawContender(Contender.Yarp, yarp.Address, yarp);
            case Contender.Nginx:
                var nginx = environment.Nginx ?? throw new InvalidOperationException("The nginx sidecar is not running.");
                await nginx.UpdateAsync(endpoints);
                return new RawContender(Contender.Nginx, nginx.Address, nginx);
            case Contender.RoundRobin:
                // The floor for "balancing across the endpoints": one SocketsHttpHandler, round robin in the caller.
                return new RoundRobinContender(endpoints);
            case Contender.Factory1:
                // The control: what IHttpClientFactory's own handler chain costs, without the mesh, on backend #1 (like raw).
                return await HostedContender.StartAsync(Contender.Factory1, endpoints, [ServiceName], _ => new Dictionary<string, string?>(), services =>
                    services.AddHttpClient(ServiceName, c => c.BaseAddress = endpoints[0]));
            case Contender.Factory:
                // The factory alone over the same endpoints as rr: one named client per endpoint (BaseAddress = that
                // endpoint), created once, picked in turn by the caller. No handler of our own, nothing mesh-like.
                var names = endpoints.Select((_, i) => FactoryClientName(i)).ToArray();
                return await HostedContender.StartAsync(Contender.Factory, endpoints, names, _ => new Dictionary<string, string?>(), services =>
                {
                    for (var i = 0; i < endpoints.Count; i++)
                    {
                        var endpoint = endpoints[i];
                        services.AddHttpClient(names[i], c => c.BaseAddress = endpoint);
                    }
                });
            case Contender.Mesh:
                return await HostedContender.StartAsync(Contender.Mesh, endpoints, [ServiceName], e => MeshSettings(e, options.MeshLoadBalancer), services =>
                {
                    // The public surface only: AddMesh() bound from the "Mesh" section, a named factory client.
                    services.AddMesh();
                    services.AddHttpClient(ServiceName, c => c.BaseAddress = new Uri($"http://{ServiceName}"));
                });
            case Contender.MeshNoLog:
                return await HostedContender.StartAsync(Contender.MeshNoLog, endpoints, [ServiceName], e => MeshSettings(e, options.MeshLoadBalancer), services =>
                {
                    // The mesh as above, the factory's two logging handlers removed (Microsoft.Extensions.Http's own
                    // RemoveAllLoggers()): what the mesh costs without the factory's floor (issue 19).
                    services.AddMesh();
                    services.AddHttpClient(ServiceName, c => c.BaseAddress = new Uri($"http://{ServiceName}")).RemoveAllLoggers();
                });
            case Contender.Stock:
                return await HostedContender.StartAsync(Contender.Stock, endpoints, [ServiceName], StockSettings, services =>
                {
                    // The .NET Aspire ServiceDefaults order: resilience outer, discovery inner (each retry re-resolves).
                    services.AddServiceDiscovery();
                    var http = services.AddHttpClient(ServiceName, c => c.BaseAddress = new Uri($"http://{ServiceName}"));
                    http.AddStandardResilienceHandler();
                    http.AddServiceDiscovery();
                });
            default:
                throw new ArgumentOutOfRangeException(nameof(name), name, "Unknown contender.");
        }
    }

    /// <summary>The name of the <c>factory</c> contender's client for endpoint <paramref name="index"/> (0-based): backend-1, backend-2, ...</summary>
    public static string FactoryClientName(int index) => string.Create(CultureInfo.InvariantCulture, $"{ServiceName}-{index + 1}");

    /// <summary><c>Mesh:Services:backend:Endpoints:{i}:Address|Weight</c> (+ <c>Mesh:LoadBalancer</c> when asked).</summary>
    public static Dictionary<string, string?> MeshSettings(IReadOnlyList<Uri> endpoints, string? loadBalancer)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (loadBalancer is not null)
        {
            settings["Mesh:LoadBalancer"] = loadBalancer;
        }

        for (var i = 0; i < endpoints.Count; i++)
        {
            settings[$"Mesh:Services:{ServiceName}:Endpoints:{i}:Address"] = endpoints[i].GetLeftPart(UriPartial.Authority);
            settings[$"Mesh:Services:{ServiceName}:Endpoints:{i}:Weight"] = "1";
        }

        return settings;
    }

    /// <summary>Microsoft.Extensions.ServiceDiscovery's configuration provider: <c>Services:backend:http:{i}</c> = host:port.</summary>
    public static Dictionary<string, string?> StockSettings(IReadOnlyList<Uri> endpoints)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < endpoints.Count; i++)
        {
            settings[$"Services:{ServiceName}:http:{i}"] = $"{endpoints[i].Host}:{endpoints[i].Port.ToString(CultureInfo.InvariantCulture)}";
        }

        return settings;
    }

    /// <summary>A plain <see cref="HttpClient"/> on a default <see cref="SocketsHttpHandler"/>: the floor, or the client of a sidecar.</summary>
    private sealed class RawContender(string name, Uri target, ISidecar? sidecar) : IContender
    {
        public string Name { get; } = name;

        public HttpClient Client { get; } = new(new SocketsHttpHandler()) { BaseAddress = target, Timeout = TimeSpan.FromSeconds(30) };

        public Uri RequestUri { get; } = new(Path, UriKind.Relative);

        public TimeSpan? SidecarCpuTime() => sidecar?.CpuTime();

        public Task UpdateEndpointsAsync(IReadOnlyList<Uri> endpoints) => sidecar is null ? Task.CompletedTask : sidecar.UpdateAsync(endpoints);

        public ValueTask DisposeAsync()
        {
            Client.Dispose();
            return default;
        }
    }

    /// <summary>
    /// A bare <see cref="HttpClient"/> per endpoint, all on one shared default <see cref="SocketsHttpHandler"/> (so one
    /// connection pool manager with a pool per endpoint, as the mesh has), each with BaseAddress = its endpoint, so a
    /// request does exactly what raw's does (relative URI combined with the base); the caller takes them in turn
    /// (one shared counter, <see cref="Interlocked.Increment(ref int)"/>). No factory, no resilience.
    /// </summary>
    private sealed class RoundRobinContender : IContender
    {
        private readonly SocketsHttpHandler _handler = new();
        private readonly HttpClient[] _clients;
        private int _next = -1;

        public RoundRobinContender(IReadOnlyList<Uri> endpoints)
        {
            _clients = [.. endpoints.Select(e => new HttpClient(_handler, disposeHandler: false) { BaseAddress = e, Timeout = TimeSpan.FromSeconds(30) })];
        }

        public string Name => Contender.RoundRobin;

        public HttpClient Client => _clients[0];

        public Uri RequestUri { get; } = new(Path, UriKind.Relative);

        public HttpClient NextClient() => _clients[(int)((uint)Interlocked.Increment(ref _next) % (uint)_clients.Length)];

        public TimeSpan? SidecarCpuTime() => null;

        public Task UpdateEndpointsAsync(IReadOnlyList<Uri> endpoints) => Task.CompletedTask;

        public ValueTask DisposeAsync()
        {
            foreach (var client in _clients)
            {
                client.Dispose();
            }

            _handler.Dispose();
            return default;
        }
    }

    /// <summary>
    /// A generic host with only a reloadable in-memory configuration (no logging providers, no defaults), and one
    /// factory client; churn replaces the configuration and fires its reload token, like an edited appsettings file.
    /// </summary>
    private sealed class HostedContender : IContender
    {
        private readonly IHost _host;
        private readonly ReloadableConfiguration _configuration;
        private readonly Func<IReadOnlyList<Uri>, Dictionary<string, string?>> _settings;
        private readonly HttpClient[] _clients;
        private int _next = -1;

        private HostedContender(string name, IHost host, ReloadableConfiguration configuration, IReadOnlyList<string> clientNames, Func<IReadOnlyList<Uri>, Dictionary<string, string?>> settings)
        {
            Name = name;
            _host = host;
            _configuration = configuration;
            _settings = settings;
            var factory = host.Services.GetRequiredService<IHttpClientFactory>();
            _clients = [.. clientNames.Select(factory.CreateClient)];
            Client = _clients[0];
        }

        public string Name { get; }

        public HttpClient Client { get; }

        public Uri RequestUri { get; } = new(Path, UriKind.Relative);

        public HttpClient NextClient() => _clients.Length == 1 ? Client : _clients[(int)((uint)Interlocked.Increment(ref _next) % (uint)_clients.Length)];

        public static async Task<IContender> StartAsync(
            string name,
            IReadOnlyList<Uri> endpoints,
            IReadOnlyList<string> clientNames,
            Func<IReadOnlyList<Uri>, Dictionary<string, string?>> settings,
            Action<IServiceCollection> configure)
        {
            var configuration = new ReloadableConfiguration(settings(endpoints));
            var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
            builder.Configuration.Sources.Clear();
            ((IConfigurationBuilder)builder.Configuration).Add(configuration);
            configure(builder.Services);
            var host = builder.Build();
            await host.StartAsync();
            return new HostedContender(name, host, configuration, clientNames, settings);
        }

        public TimeSpan? SidecarCpuTime() => null;

        public Task UpdateEndpointsAsync(IReadOnlyList<Uri> endpoints)
        {
            _configuration.Replace(_settings(endpoints));
            return Task.CompletedTask;
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var client in _clients)
            {
                client.Dispose();
            }

            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _host.StopAsync(cts.Token);
            _host.Dispose();
        }
    }
}

/// <summary>An in-memory configuration whose whole content can be replaced, firing a reload like a changed file.</summary>
internal sealed class ReloadableConfiguration : ConfigurationProvider, IConfigurationSource
{
    public ReloadableConfiguration(IDictionary<string, string?> initial)
    {
        Data = new Dictionary<string, string?>(initial, StringComparer.OrdinalIgnoreCase);
    }

    public IConfigurationProvider Build(IConfigurationBuilder builder) => this;

    public void Replace(IDictionary<string, string?> values)
    {
        Data = new Dictionary<string, string?>(values, StringComparer.OrdinalIgnoreCase);
        OnReload();
    }
}
