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

    /// <summary>A thin view over the service's watch; holds no state of its own but its claim on the watch.</summary>
    private sealed class Provider(ConsulCatalogCache cache, string serviceName) : IServiceEndpointProvider
    {
        private readonly WatchLease<ConsulServiceWatch> _lease = new(() => cache.Acquire(serviceName), cache.Release);

        public async ValueTask PopulateAsync(IServiceEndpointBuilder endpoints, CancellationToken cancellationToken)
        {
            if (endpoints.Endpoints.Count != 0)
            {
                // An earlier provider (static configuration) knows the service: no need to watch it in Consul.
                return;
            }

            var watch = _lease.Get();
            if (watch is null)
            {
                return;
            }

            if (!watch.State.HasAnswer)
            {
                // First use: wait for the first (non-blocking) query; bounded by Mesh:Consul:RequestTimeout.
                await watch.FirstAttempt.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            // Never throws from here on: Consul unreachable at first use leaves the builder empty (other providers
            // may know the service) with a token that fires once Consul answers.
            var state = watch.State;
            endpoints.AddChangeToken(state.ChangeToken);
            if (!state.Known)
            {
                return;
            }

            endpoints.Features.Set<IMeshServiceFeature>(new MeshServiceFeature(ProviderName));
            foreach (var instance in state.Instances)
            {
                var features = new FeatureCollection();
                features.Set<IMeshEndpointFeature>(new MeshEndpointFeature(instance.Id, instance.Weight, instance.Zone));
                features.Set<IServiceEndpointProvider>(this);
                endpoints.Endpoints.Add(ServiceEndpoint.Create(new UriEndPoint(instance.Address), features));
            }
        }

        public ValueTask DisposeAsync()
        {
            _lease.Release();
            return default;
        }

        public override string ToString() => ProviderName;
    }
}
