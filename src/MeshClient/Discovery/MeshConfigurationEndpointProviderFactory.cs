using System.Diagnostics.CodeAnalysis;
using MeshClient.Configuration;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Discovery;

/// <summary>
/// Discovers the static endpoints of <c>Mesh:Services:{name}:Endpoints</c> (or of <see cref="MeshOptions.Services"/>
/// set in code). Registered ahead of the standard configuration provider, so it wins when both know a service.
/// </summary>
internal sealed class MeshConfigurationEndpointProviderFactory(MeshOptionsChangeNotifier options) : IServiceEndpointProviderFactory
{
    public const string ProviderName = "Mesh configuration (Mesh:Services)";

    private readonly ScopedChangeTokens.Counter _links = new();

    /// <summary>Gets the registrations that this factory's providers hold on the options token (diagnostics and tests).</summary>
    internal int OptionsTokenLinks => _links.Value;

    public bool TryCreateProvider(ServiceEndpointQuery query, [NotNullWhen(true)] out IServiceEndpointProvider? provider)
    {
        provider = new Provider(query.ServiceName, options, _links);
        return true;
    }

    private sealed class Provider(string serviceName, MeshOptionsChangeNotifier options, ScopedChangeTokens.Counter links) : IServiceEndpointProvider
    {
        private readonly ScopedChangeTokens _tokens = new(links);

        public ValueTask PopulateAsync(IServiceEndpointBuilder endpoints, CancellationToken cancellationToken)
        {
            // Take the token before reading, so that a change between the two is never missed. Added for every
            // service (a reload may add it later), so linked through a token of this provider's own.
            _tokens.AddChangeToken(endpoints, options.GetChangeToken());
            if (endpoints.Endpoints.Count != 0
                || !options.Current.Services.TryGetValue(serviceName, out var service)
                || service.Endpoints.Count == 0)
            {
                return default;
            }

            endpoints.Features.Set<IMeshServiceFeature>(new MeshServiceFeature(ProviderName));
            foreach (var endpoint in service.Endpoints)
            {
                // Validated at start-up and on every reload: the address is an absolute http(s) URI.
                var uri = new Uri(endpoint.Address!, UriKind.Absolute);
                var features = new FeatureCollection();
                features.Set<IMeshEndpointFeature>(new MeshEndpointFeature(uri.GetLeftPart(UriPartial.Path), endpoint.Weight, endpoint.Zone));
                if (!string.IsNullOrEmpty(endpoint.HostName))
                {
                    features.Set<IHostNameFeature>(new HostNameFeature(endpoint.HostName));
                }

                endpoints.Endpoints.Add(ServiceEndpoint.Create(new UriEndPoint(uri), features));
            }

            return default;
        }

        public ValueTask DisposeAsync()
        {
            _tokens.Dispose();
            return default;
        }

        public override string ToString() => ProviderName;
    }

    private sealed class HostNameFeature(string hostName) : IHostNameFeature
    {
        public string HostName { get; } = hostName;
    }
}
