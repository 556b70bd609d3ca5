using MeshClient.Balancing;
using MeshClient.Resilience;
using Polly;

namespace MeshClient.Handlers;

/// <summary>
/// Runs a call through its service's Polly pipeline (total timeout, then retry with backoff, Retry-After and the
/// retry budget). Each retry goes back through the balancer, which picks an endpoint not tried yet.
/// </summary>
internal sealed class MeshResilienceHandler(ResilienceRegistry registry) : DelegatingHandler
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
        return SendWithPipelineAsync(resilience.Call, request, cancellationToken);
    }

    private async Task<HttpResponseMessage> SendWithPipelineAsync(ResiliencePipeline<HttpResponseMessage> pipeline, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(ResilienceRegistry.RequestKey, request);
        try
        {
            // Polly turns exceptions into outcomes itself; the callback hands it the inner task as it is.
            return await pipeline.ExecuteAsync(
                static (ctx, state) => new ValueTask<HttpResponseMessage>(state.Handler.SendInnerAsync(state.Request, ctx.CancellationToken)),
                context,
                (Handler: this, Request: request)).ConfigureAwait(false);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private Task<HttpResponseMessage> SendInnerAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        base.SendAsync(request, cancellationToken);
}
