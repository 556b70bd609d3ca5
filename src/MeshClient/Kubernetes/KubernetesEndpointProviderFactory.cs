using System.Diagnostics.CodeAnalysis;
using MeshClient.Discovery;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Kubernetes;

/// <summary>
/// Discovers services from Kubernetes EndpointSlices. Registered after the mesh's configuration provider and before
/// the standard configuration provider: a service with static endpoints in <c>Mesh:Services</c> never reaches the
/// API server. A name that is not a Kubernetes Service (or a Service with no EndpointSlice) falls through to the
/// other providers.
/// </summary>
internal sealed class KubernetesEndpointProviderFactory(KubernetesWatchCache cache) : IServiceEndpointProviderFactory
{
    public const string ProviderName = "Kubernetes";

    public bool TryCreateProvider(ServiceEndpointQuery query, [NotNullWhen(true)] out IServiceEndpointProvider? provider)
    {
        provider = cache.TryParse(query.ServiceName, out var service) ? new Provider(cache, service) : null;
        return provider is not null;
    }

    public override string ToString() => ProviderName;

    /// <summary>The service's endpoints from its watch (<see cref="WatchedServiceProvider{TWatch, TState}"/>).</summary>
    private sealed class Provider(KubernetesWatchCache cache, KubernetesServiceName service)
        : WatchedServiceProvider<KubernetesServiceWatch, KubernetesServiceState>(() => cache.Acquire(service), cache.Release, KubernetesEndpointProviderFactory.ProviderName)
    {
        protected override void AddEndpoints(KubernetesServiceState state, IServiceEndpointBuilder endpoints)
        {
            foreach (var instance in state.Instances)
            {
                var features = new FeatureCollection();
                features.Set<IMeshEndpointFeature>(new MeshEndpointFeature(instance.Id, 1, instance.Zone));
                var kubernetes = new KubernetesEndpointFeature(instance.NodeName, instance.ForZonesList);
                features.Set<IKubernetesEndpointFeature>(kubernetes);
                if (kubernetes.ForZones.Count > 0)
                {
                    features.Set<IEndpointZoneHints>(kubernetes); // zone routing honours hints.forZones
                }
                features.Set<IServiceEndpointProvider>(this);
                endpoints.Endpoints.Add(ServiceEndpoint.Create(new UriEndPoint(instance.Address), features));
            }
        }
    }
}
