namespace MeshClient.Discovery;

/// <summary>
/// Mesh metadata of one discovered endpoint, carried in <c>ServiceEndpoint.Features</c>. Any
/// <c>IServiceEndpointProvider</c> can set it; an endpoint without it has weight 1, no zone, and an id made
/// from its address.
/// </summary>
public interface IMeshEndpointFeature
{
    /// <summary>
    /// Gets the stable instance id of the endpoint (for Consul, <c>Service.ID</c>). Live counters and health
    /// state are keyed by it, so they survive rediscovery.
    /// </summary>
    string Id { get; }

    /// <summary>Gets the weight of the endpoint, from 1 to 65535.</summary>
    int Weight { get; }

    /// <summary>Gets the zone of the endpoint, if known.</summary>
    string? Zone { get; }
}
