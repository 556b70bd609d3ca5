namespace MeshClient;

/// <summary>
/// Thrown when a service has routes (<c>Mesh:Services:{name}:Routes</c>) and none of them matches the request: the
/// call fails before a byte is sent, and is not retried. A last route without <c>Match</c> takes every other request.
/// </summary>
public sealed class NoMatchingRouteException : MeshException
{
    /// <summary>Initializes a new instance of the <see cref="NoMatchingRouteException"/> class.</summary>
    /// <param name="serviceName">The service whose routes were tried.</param>
    /// <param name="message">The message.</param>
    public NoMatchingRouteException(string serviceName, string message)
        : base(serviceName, message)
    {
    }
}
