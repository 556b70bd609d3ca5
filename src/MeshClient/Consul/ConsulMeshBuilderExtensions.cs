using MeshClient;
using MeshClient.Configuration;
using MeshClient.Consul;
using MeshClient.Discovery;
using MeshClient.Model;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.ServiceDiscovery;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds Consul discovery (and optional self-registration) to the mesh.</summary>
public static class ConsulMeshBuilderExtensions
{
    /// <summary>
    /// Discovers services through Consul's HTTP API with blocking queries, bound from <c>Mesh:Consul</c>
    /// (reloadable), and registers the running service when <c>Mesh:Consul:Registration:Enabled</c> is true.
    /// Services with static endpoints in <c>Mesh:Services</c> are not looked up in Consul.
    /// </summary>
    /// <param name="builder">The mesh builder returned by <c>AddMesh()</c>.</param>
    /// <returns>The same builder.</returns>
    public static IMeshBuilder AddConsul(this IMeshBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        AddConsulCore(builder);
        return builder;
    }

    /// <summary>
    /// Discovers services through Consul, bound from <c>Mesh:Consul</c> when there is such a section, then
    /// configured by <paramref name="configure"/>.
    /// </summary>
    /// <param name="builder">The mesh builder returned by <c>AddMesh()</c>.</param>
    /// <param name="configure">Configures the options after configuration binding.</param>
    /// <returns>The same builder.</returns>
    public static IMeshBuilder AddConsul(this IMeshBuilder builder, Action<ConsulOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        AddConsulCore(builder);
        builder.Services.Configure(configure);
        return builder;
    }

    private static void AddConsulCore(IMeshBuilder builder)
    {
        var services = builder.Services;
        if (services.Any(d => d.ServiceType == typeof(ConsulCatalogCache)))
        {
            return;
        }

        var path = ProviderRegistration.AddOptions<ConsulOptions>(builder, "Consul", ConsulConfigurationSchema.Keys, static (section, o) => section.Bind(o), static o => o.BindingErrors);
        services.AddSingleton(new ConsulConfigurationPath(path));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ConsulOptions>, ConsulOptionsValidator>());

        // The Consul client never passes through the mesh handlers (nor any other handler: see the filter).
        services.AddHttpClient(ConsulClient.HttpClientName, c => c.Timeout = ConsulBlockingRules.ClientTimeout(ConsulBlockingRules.MaxWait))
            .SetHandlerLifetime(Timeout.InfiniteTimeSpan)
            .RemoveAllLoggers()

            // Should an application add a logger back to this client, the token header is still logged as "*".
            .RedactLoggedHeaders(["X-Consul-Token", "Authorization"]);
        services.Configure<MeshClientSelection>(s => s.Excluded.Add(ConsulClient.HttpClientName));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHttpMessageHandlerBuilderFilter, ConsulHttpMessageHandlerBuilderFilter>());

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(Randomizer.Shared);
        services.TryAddSingleton<ConsulTls>();
        services.TryAddSingleton<ConsulClient>();
        services.TryAddSingleton<ConsulCatalogCache>();
        services.AddHostedService<ConsulRegistrationService>();

        ProviderRegistration.AddProviderFactory<ConsulEndpointProviderFactory>(services);
    }
}
