using MeshClient.Balancing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshClient.Tests.Infrastructure;

/// <summary>A service provider with the mesh added from configuration, and its real <see cref="IHttpClientFactory"/>.</summary>
public sealed class MeshHost : IAsyncDisposable
{
    private MeshHost(ServiceProvider provider, TestConfiguration configuration)
    {
        Services = provider;
        Configuration = configuration;
    }

    public ServiceProvider Services { get; }

    public TestConfiguration Configuration { get; }

    public IHttpClientFactory Factory => Services.GetRequiredService<IHttpClientFactory>();

    internal ServiceTableRegistry Registry => Services.GetRequiredService<ServiceTableRegistry>();

    public HttpClient CreateClient(string name = "test") => Factory.CreateClient(name);

    public static MeshHost Create(IDictionary<string, string?> settings, Action<IServiceCollection>? configure = null)
    {
        var configuration = new TestConfiguration(settings);
        var root = new ConfigurationBuilder().Add(configuration).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(root);
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
        services.AddMesh();
        configure?.Invoke(services);
        return new MeshHost(services.BuildServiceProvider(validateScopes: true), configuration);
    }

    /// <summary>Settings for one service with the given endpoints and weights.</summary>
    public static Dictionary<string, string?> ServiceSettings(string service, string? policy, params (TestBackend Backend, int Weight)[] endpoints)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (policy is not null)
        {
            settings[$"Mesh:Services:{service}:LoadBalancer"] = policy;
        }

        for (var i = 0; i < endpoints.Length; i++)
        {
            settings[$"Mesh:Services:{service}:Endpoints:{i}:Address"] = endpoints[i].Backend.Address.ToString();
            settings[$"Mesh:Services:{service}:Endpoints:{i}:Weight"] = endpoints[i].Weight.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return settings;
    }

    public async ValueTask DisposeAsync() => await Services.DisposeAsync();
}
