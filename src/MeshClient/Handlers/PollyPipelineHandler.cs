using MeshClient.Resilience;
using Polly;

namespace MeshClient.Handlers;

/// <summary>A handler that sends the request on through a Polly pipeline, with a pooled resilience context.</summary>
internal abstract class PollyPipelineHandler : DelegatingHandler
{
    protected async Task<HttpResponseMessage> SendThroughAsync(ResiliencePipeline<HttpResponseMessage> pipeline, HttpRequestMessage request, CancellationToken cancellationToken)
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
