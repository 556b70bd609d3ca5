namespace MeshClient;

/// <summary>
/// Thrown when a request names a single-label host (a service name such as <c>http://catalog</c>) that no
/// discovery provider knows. IP literals, <c>localhost</c> and dotted names pass through untouched instead.
/// </summary>
public sealed class UnknownServiceException : MeshException
{
    /// <summary>Initializes a new instance of the <see cref="UnknownServiceException"/> class.</summary>
    /// <param name="serviceName">The service that no provider knows.</param>
    /// <param name="providers">The providers that were asked, in order.</param>
    /// <param name="innerException">The error a provider raised, if any.</param>
    public UnknownServiceException(string serviceName, IReadOnlyList<string> providers, Exception? innerException = null)
        : base(serviceName, CreateMessage(serviceName, providers), innerException)
    {
        Providers = providers;
    }

    /// <summary>Gets the discovery providers that were asked, in order.</summary>
    public IReadOnlyList<string> Providers { get; }

    private static string CreateMessage(string serviceName, IReadOnlyList<string> providers)
    {
        ArgumentNullException.ThrowIfNull(providers);
        var asked = providers.Count == 0 ? "no provider is registered" : "asked: " + string.Join(", ", providers);
        return $"The service '{serviceName}' is not known to the mesh ({asked}). " +
            $"Add endpoints under 'Mesh:Services:{serviceName}:Endpoints', register it in Consul, " +
            "or use a dotted host name or an IP address to call a host outside the mesh.";
    }
}
