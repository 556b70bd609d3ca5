using System.Diagnostics.CodeAnalysis;
using MeshClient.Discovery;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Consul;

/// <summary>
/// Discovers services through Consul. Registered after the mesh's configuration provider and before the standard
/// configuration provider: a service with static endpoints in <c>Mesh:Services</c> never reaches Consul.
/// </summary>
internal sealed class ConsulEndpointProviderFactory(ConsulCatalogCache cache) : IServiceEndpointProviderFactory
{
    public const string ProviderName = "Consul";

    public bool TryCreateProvider(ServiceEndpointQuery query, [NotNullWhen(true)] out IServiceEndpointProvider? provider)
    {
        provider = ConsulCatalogCache.Handles(query.ServiceName) ? new Provider(cache, query.ServiceName) : null;
        return provider is not null;
    }

    public override string ToString() => ProviderName;

    /// <summary>The service's endpoints from its watch (<see cref="WatchedServiceProvider{TWatch, TState}"/>).</summary>
    private sealed class Provider(ConsulCatalogCache cache, string serviceName)
        : WatchedServiceProvider<ConsulServiceWatch, ConsulServiceState>(() => cache.Acquire(serviceName), cache.Release, ConsulEndpointProviderFactory.ProviderName)
    {
        protected override void AddEndpoints(ConsulServiceState state, IServiceEndpointBuilder endpoints)
        {
            foreach (var instance in state.Instances)
            {
                var features = new FeatureCollection();
                features.Set<IMeshEndpointFeature>(new MeshEndpointFeature(instance.Id, instance.Weight, instance.Zone));
                features.Set<IServiceEndpointProvider>(this);
                endpoints.Endpoints.Add(ServiceEndpoint.Create(new UriEndPoint(instance.Address), features));
            }
        }
    }
}
