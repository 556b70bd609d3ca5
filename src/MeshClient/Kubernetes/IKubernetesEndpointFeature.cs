namespace MeshClient.Kubernetes;

/// <summary>
/// What an EndpointSlice says about one endpoint beyond its address, carried in <c>ServiceEndpoint.Features</c> of
/// the endpoints the Kubernetes provider discovers (with <see cref="Discovery.IMeshEndpointFeature"/>, which holds
/// the pod name as id and the zone), for zone-aware routing.
/// </summary>
public interface IKubernetesEndpointFeature
{
    /// <summary>Gets the node the pod runs on (<c>nodeName</c>), if the slice says.</summary>
    string? NodeName { get; }

    /// <summary>Gets the zones the endpoint is meant to serve (<c>hints.forZones</c>, topology-aware routing); empty when there is no hint.</summary>
    IReadOnlyList<string> ForZones { get; }
}

/// <summary>The immutable implementation of <see cref="IKubernetesEndpointFeature"/>.</summary>
internal sealed class KubernetesEndpointFeature(string? nodeName, IReadOnlyList<string> forZones) : IKubernetesEndpointFeature, Discovery.IEndpointZoneHints
{
    public string? NodeName { get; } = nodeName;

    public IReadOnlyList<string> ForZones { get; } = forZones;
}
