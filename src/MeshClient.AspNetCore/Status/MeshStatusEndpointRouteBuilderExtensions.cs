using MeshClient.AspNetCore.Status;
using MeshClient.Balancing;
using MeshClient.Status;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps the MeshClient status page.</summary>
public static class MeshStatusEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps <c>GET <paramref name="pattern"/></c> to the mesh's status: a versioned JSON snapshot of every service in
    /// use, its endpoints, their state and load (for a request that accepts <c>application/json</c>), otherwise a
    /// self-contained HTML page that shows the same data and refreshes itself every second.
    /// </summary>
    /// <remarks>
    /// The page shows internal addresses, zones and failure counts: protect it, for example with
    /// <c>.RequireAuthorization()</c> or <c>.RequireHost()</c> on the returned builder, or map it on an internal port.
    /// </remarks>
    /// <param name="endpoints">The endpoint route builder (a <c>WebApplication</c>).</param>
    /// <param name="pattern">The route pattern, <c>/mesh</c> by default.</param>
    /// <returns>A builder to protect the endpoint (<c>.RequireAuthorization()</c>, <c>.RequireHost()</c>).</returns>
    /// <exception cref="InvalidOperationException"><c>AddMesh()</c> was not called on the services.</exception>
    public static IEndpointConventionBuilder MapMeshStatus(this IEndpointRouteBuilder endpoints, string pattern = "/mesh")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        var services = endpoints.ServiceProvider;
        var status = services.GetService<IMeshStatus>()
            ?? throw new InvalidOperationException("MapMeshStatus needs the mesh: call services.AddMesh() first.");
        var endpoint = new MeshStatusEndpoint(status, services.GetService<TimeProvider>() ?? TimeProvider.System);
        return endpoints.MapGet(pattern, (RequestDelegate)endpoint.InvokeAsync)
            .WithDisplayName("MeshClient status")
            .ExcludeFromDescription();
    }
}
