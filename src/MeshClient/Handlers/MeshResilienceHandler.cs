using MeshClient.Model;
using MeshClient.Balancing;
using MeshClient.Resilience;

namespace MeshClient.Handlers;

/// <summary>
/// Runs a call through its service's Polly pipeline (total timeout, then retry with backoff, Retry-After and the
/// retry budget). Each retry goes back through the balancer, which picks an endpoint not tried yet.
/// </summary>
internal sealed class MeshResilienceHandler(ResilienceRegistry registry) : PollyPipelineHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!request.Options.TryGetValue(MeshRequestContext.Key, out var mesh))
        {
            return base.SendAsync(request, cancellationToken);
        }

        var resilience = registry.Get(mesh.ServiceName);
        mesh.Resilience = resilience;
        resilience.Budget.OnRequest();
        return SendThroughAsync(resilience.Call, request, mesh, cancellationToken);
    }
}
