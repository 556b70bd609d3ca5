namespace MeshClient;

/// <summary>
/// Thrown when a service is known but none of its endpoints can take the request: the service has no endpoint,
/// or every endpoint was already tried by this request.
/// </summary>
public sealed class NoHealthyEndpointException : MeshException
{
    /// <summary>Initializes a new instance of the <see cref="NoHealthyEndpointException"/> class.</summary>
    /// <param name="serviceName">The service.</param>
    /// <param name="message">The message.</param>
    public NoHealthyEndpointException(string serviceName, string message)
        : base(serviceName, message)
    {
    }
}
