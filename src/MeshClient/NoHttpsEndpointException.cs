namespace MeshClient;

/// <summary>
/// Thrown when an <c>https://</c> request names a service none of whose endpoints serves https (every address is
/// <c>http://</c>, as Consul's default <c>Scheme</c> gives). The mesh never downgrades a request's scheme, so the
/// request is not sent at all. Not retried: another attempt would find the same endpoints.
/// </summary>
public sealed class NoHttpsEndpointException : MeshException
{
    /// <summary>Initializes a new instance of the <see cref="NoHttpsEndpointException"/> class.</summary>
    /// <param name="serviceName">The service.</param>
    public NoHttpsEndpointException(string serviceName)
        : base(serviceName, CreateMessage(serviceName))
    {
    }

    private static string CreateMessage(string serviceName) =>
        $"The service '{serviceName}' has no https endpoint, and an https request is never sent in cleartext. " +
        "Give its endpoints https addresses (Consul: Meta.scheme = https), or call it with http:// " +
        "(https+http:// prefers https and falls back to http).";
}
