using MeshClient;
using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Kubernetes;
using MeshClient.Model;
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

        var path = ProviderRegistration.AddOptions<KubernetesOptions>(builder, "Kubernetes", KubernetesConfigurationSchema.Keys, static (section, o) => section.Bind(o), static o => o.BindingErrors);
        services.AddSingleton(new KubernetesConfigurationPath(path));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KubernetesOptions>, KubernetesOptionsValidator>());

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(Randomizer.Shared);
        services.TryAddSingleton<KubernetesApiClient>();
        services.TryAddSingleton<KubernetesWatchCache>();

        ProviderRegistration.AddProviderFactory<KubernetesEndpointProviderFactory>(services);
    }
}
