using MeshClient;
using MeshClient.Discovery;
using MeshClient.Internal;
using MeshClient.Kubernetes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.ServiceDiscovery;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds Kubernetes discovery (EndpointSlices) to the mesh.</summary>
public static class KubernetesMeshBuilderExtensions
{
    /// <summary>
    /// Discovers Kubernetes Services from their <c>discovery.k8s.io/v1</c> EndpointSlices with one list-then-watch per
    /// service in use, bound from <c>Mesh:Kubernetes</c> (reloadable). <c>http://catalog</c> is the Service
    /// <c>catalog</c> in the configured (or the pod's own) namespace; <c>catalog.shop</c>, <c>catalog.shop.svc</c> and
    /// <c>catalog.shop.svc.cluster.local</c> are the Service <c>catalog</c> in namespace <c>shop</c>. Services with
    /// static endpoints in <c>Mesh:Services</c> are not looked up; names Kubernetes does not know fall through to the
    /// other providers.
    /// </summary>
    /// <param name="builder">The mesh builder returned by <c>AddMesh()</c>.</param>
    /// <returns>The same builder.</returns>
    public static IMeshBuilder AddKubernetes(this IMeshBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        AddKubernetesCore(builder);
        return builder;
    }

    /// <summary>
    /// Discovers Kubernetes Services, bound from <c>Mesh:Kubernetes</c> when there is such a section, then configured
    /// by <paramref name="configure"/>.
    /// </summary>
    /// <param name="builder">The mesh builder returned by <c>AddMesh()</c>.</param>
    /// <param name="configure">Configures the options after configuration binding.</param>
    /// <returns>The same builder.</returns>
    public static IMeshBuilder AddKubernetes(this IMeshBuilder builder, Action<KubernetesOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        AddKubernetesCore(builder);
        builder.Services.Configure(configure);
        return builder;
    }

    private static void AddKubernetesCore(IMeshBuilder builder)
    {
        var services = builder.Services;
        if (services.Any(d => d.ServiceType == typeof(KubernetesWatchCache)))
        {
            return;
        }

        var path = (builder is MeshBuilder mesh ? mesh.ConfigurationPath : MeshServiceCollectionExtensions.DefaultSectionName) + ":Kubernetes";
        var options = services.AddOptions<KubernetesOptions>();
        options.Configure<IServiceProvider>((o, sp) =>
        {
            try
            {
                sp.GetService<IConfiguration>()?.GetSection(path).Bind(o);
            }
            catch (InvalidOperationException ex)
            {
                // A value the binder cannot convert ("WatchTimeout": "forever") becomes a validation failure naming its key.
                o.BindingErrors.Add(ex.InnerException is { } inner ? $"{ex.Message} {inner.Message}" : ex.Message);
            }
        });
        services.AddSingleton<IOptionsChangeTokenSource<KubernetesOptions>>(sp =>
            new ConfigurationChangeTokenSource<KubernetesOptions>(
                Options.Options.DefaultName,
                (IConfiguration?)sp.GetService<IConfiguration>()?.GetSection(path) ?? new ConfigurationBuilder().Build()));
        options.ValidateOnStart();
        services.AddSingleton(new KubernetesConfigurationPath(path));

        // Mesh:Kubernetes's keys are checked with the mesh's: a typo there is refused at start-up and on reload too.
        services.AddSingleton(new MeshConfigurationSubsection("Kubernetes", MeshConfigurationSchema.Kubernetes));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KubernetesOptions>, KubernetesOptionsValidator>());

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(Randomizer.Shared);
        services.TryAddSingleton<KubernetesOptionsHolder>();
        services.TryAddSingleton<KubernetesApiClient>();
        services.TryAddSingleton<KubernetesWatchCache>();

        // After the mesh's configuration provider, before the standard configuration provider.
        var factory = ServiceDescriptor.Singleton<IServiceEndpointProviderFactory, KubernetesEndpointProviderFactory>();
        var meshProvider = services.FirstOrDefault(d => d.ServiceType == typeof(IServiceEndpointProviderFactory) && d.ImplementationType == typeof(MeshConfigurationEndpointProviderFactory));
        var standardProvider = services.FirstOrDefault(d => d.ServiceType == typeof(IServiceEndpointProviderFactory) && d.ImplementationType?.Name == "ConfigurationServiceEndpointProviderFactory");
        if (meshProvider is not null)
        {
            services.Insert(services.IndexOf(meshProvider) + 1, factory);
        }
        else if (standardProvider is not null)
        {
            services.Insert(services.IndexOf(standardProvider), factory);
        }
        else
        {
            services.Add(factory);
        }
    }
}
