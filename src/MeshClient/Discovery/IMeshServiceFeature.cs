namespace MeshClient.Discovery;

/// <summary>
/// Set in <c>IServiceEndpointBuilder.Features</c> by a provider that knows a service, even when the service has
/// no endpoint at the moment. It lets the mesh tell "known, but no instance" (<see cref="NoHealthyEndpointException"/>)
/// from "nobody knows this name" (<see cref="UnknownServiceException"/>).
/// </summary>
public interface IMeshServiceFeature
{
    /// <summary>Gets the name of the provider that knows the service, for error messages.</summary>
    string ProviderName { get; }
}

/// <summary>The immutable implementation of <see cref="IMeshServiceFeature"/>.</summary>
/// <param name="providerName">The name of the provider that knows the service.</param>
public sealed class MeshServiceFeature(string providerName) : IMeshServiceFeature
{
    /// <inheritdoc />
    public string ProviderName { get; } = providerName;
}
