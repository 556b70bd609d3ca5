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
            case Contender.Factory:
                // The control: what IHttpClientFactory's own handler chain costs, without the mesh.
                return await HostedContender.StartAsync(Contender.Factory, endpoints, _ => new Dictionary<string, string?>(), services =>
                    services.AddHttpClient(ServiceName, c => c.BaseAddress = endpoints[0]));
            case Contender.Mesh:
                return await HostedContender.StartAsync(Contender.Mesh, endpoints, e => MeshSettings(e, options.MeshLoadBalancer), services =>
                {
                    // The public surface only: AddMesh() bound from the "Mesh" section, a named factory client.
                    services.AddMesh();
                    services.AddHttpClient(ServiceName, c => c.BaseAddress = new Uri($"http://{ServiceName}"));
                });
            case Contender.Stock:
                return await HostedContender.StartAsync(Contender.Stock, endpoints, StockSettings, services =>
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
    /// A generic host with only a reloadable in-memory configuration (no logging providers, no defaults), and one
    /// factory client; churn replaces the configuration and fires its reload token, like an edited appsettings file.
    /// </summary>
    private sealed class HostedContender : IContender
    {
        private readonly IHost _host;
        private readonly ReloadableConfiguration _configuration;
        private readonly Func<IReadOnlyList<Uri>, Dictionary<string, string?>> _settings;

        private HostedContender(string name, IHost host, ReloadableConfiguration configuration, Func<IReadOnlyList<Uri>, Dictionary<string, string?>> settings)
        {
            Name = name;
            _host = host;
            _configuration = configuration;
            _settings = settings;
            Client = host.Services.GetRequiredService<IHttpClientFactory>().CreateClient(ServiceName);
        }

        public string Name { get; }

        public HttpClient Client { get; }

        public Uri RequestUri { get; } = new(Path, UriKind.Relative);

        public static async Task<IContender> StartAsync(
            string name,
            IReadOnlyList<Uri> endpoints,
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
            return new HostedContender(name, host, configuration, settings);
        }

        public TimeSpan? SidecarCpuTime() => null;

        public Task UpdateEndpointsAsync(IReadOnlyList<Uri> endpoints)
        {
            _configuration.Replace(_settings(endpoints));
            return Task.CompletedTask;
        }

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
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
