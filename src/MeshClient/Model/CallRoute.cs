namespace MeshClient.Model;

/// <summary>
/// The route a call took and the backend it chose (<see cref="MeshRequestContext.Route"/>,
/// <see cref="MeshRequestContext.Backend"/>): one immutable instance per route and backend, made when the routes are
/// compiled (<c>Routing/</c>), so that a routed call allocates nothing for it and an unrouted call carries one null
/// reference instead of two strings (issue 19: the context is made on every call).
/// </summary>
/// <param name="name">The route's name.</param>
/// <param name="backend">The backend service (the routed service itself while the backend is still to be chosen).</param>
internal sealed class CallRoute(string name, string backend)
{
    /// <summary>Gets the route's name.</summary>
    public string Name { get; } = name;

    /// <summary>Gets the service whose endpoints, balancer and resilience the call uses.</summary>
    public string Backend { get; } = backend;
}
