namespace MeshClient.Discovery;

/// <summary>
/// The zones a discovered endpoint is meant to serve, when its provider says (Kubernetes <c>hints.forZones</c>,
/// topology-aware routing), carried in <c>ServiceEndpoint.Features</c>. Zone routing then treats the endpoint as local
/// to a caller whose zone is among them, and as remote to every other caller, whatever the endpoint's own zone.
/// </summary>
internal interface IEndpointZoneHints
{
    /// <summary>Gets the zones; never empty (a provider sets the feature only when there is a hint).</summary>
    IReadOnlyList<string> ForZones { get; }
}
