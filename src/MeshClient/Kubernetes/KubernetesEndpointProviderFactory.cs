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

    /// <summary>A thin view over the service's watch; holds no state of its own but its claim on the watch.</summary>
    private sealed class Provider(KubernetesWatchCache cache, KubernetesServiceName service) : IServiceEndpointProvider
    {
        private readonly WatchLease<KubernetesServiceWatch> _lease = new(() => cache.Acquire(service), cache.Release);

        public async ValueTask PopulateAsync(IServiceEndpointBuilder endpoints, CancellationToken cancellationToken)
        {
            if (endpoints.Endpoints.Count != 0)
            {
                // An earlier provider (static configuration) knows the service: no need to watch it.
                return;
            }

            var watch = _lease.Get();
            if (watch is null)
            {
                return;
            }

            if (!watch.State.HasAnswer)
            {
                // First use: wait for the first list; bounded by Mesh:Kubernetes:RequestTimeout.
                await watch.FirstAttempt.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            // Never throws from here on: an API server unreachable at first use leaves the builder empty (other
            // providers may know the service) with a token that fires once the list is answered.
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
                features.Set<IMeshEndpointFeature>(new MeshEndpointFeature(instance.Id, 1, instance.Zone));
                features.Set<IKubernetesEndpointFeature>(new KubernetesEndpointFeature(instance.NodeName, instance.ForZonesList));
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
