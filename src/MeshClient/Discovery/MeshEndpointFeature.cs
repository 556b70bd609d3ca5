using MeshClient.Configuration;

namespace MeshClient.Discovery;

/// <summary>
/// The immutable implementation of <see cref="IMeshEndpointFeature"/>, for discovery providers to attach to the
/// endpoints they create: <c>features.Set&lt;IMeshEndpointFeature&gt;(new MeshEndpointFeature(id, weight, zone))</c>.
/// </summary>
public sealed class MeshEndpointFeature : IMeshEndpointFeature
{
    /// <summary>Initializes a new instance of the <see cref="MeshEndpointFeature"/> class.</summary>
    /// <param name="id">The stable instance id.</param>
    /// <param name="weight">The weight, from 1 to 65535.</param>
    /// <param name="zone">The zone, if known.</param>
    public MeshEndpointFeature(string id, int weight, string? zone)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        ArgumentOutOfRangeException.ThrowIfLessThan(weight, MeshEndpointOptions.MinWeight);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(weight, MeshEndpointOptions.MaxWeight);
        Id = id;
        Weight = weight;
        Zone = zone;
    }

    /// <inheritdoc />
    public string Id { get; }

    /// <inheritdoc />
    public int Weight { get; }

    /// <inheritdoc />
    public string? Zone { get; }
}
