namespace MeshClient.Model;

/// <summary>
/// A request URI rewritten to one endpoint of a service (<see cref="EndpointEntry.Rewrite(Uri, string)"/>). The connect callback
/// knows a connection to a mesh endpoint by it (the service's connect timeout and TLS apply), where a URI of any other
/// type (the caller's own, a redirect target) is not one; and the endpoint keeps its last one to hand to the next
/// request for the same path. A <see cref="Uri"/> is immutable, so one instance may go on many requests at once.
/// </summary>
internal sealed class EndpointUri : Uri
{
    /// <summary>Creates the URI of an attempt on an endpoint of <paramref name="serviceName"/>.</summary>
    /// <param name="target">The rewritten URI.</param>
    /// <param name="options">How to parse it.</param>
    /// <param name="serviceName">The service whose endpoint it names.</param>
    /// <param name="originalScheme">The scheme of the request it was rewritten from.</param>
    /// <param name="originalPathAndQuery">The path and query of the request it was rewritten from.</param>
    public EndpointUri(string target, in UriCreationOptions options, string serviceName, string originalScheme, string originalPathAndQuery)
        : base(target, in options)
    {
        ServiceName = serviceName;
        OriginalScheme = originalScheme;
        OriginalPathAndQuery = originalPathAndQuery;
    }

    /// <summary>Gets the service whose endpoint this URI names.</summary>
    public string ServiceName { get; }

    /// <summary>Gets the scheme of the request URI this was rewritten from.</summary>
    public string OriginalScheme { get; }

    /// <summary>Gets the path and query of the request URI this was rewritten from.</summary>
    public string OriginalPathAndQuery { get; }
}
