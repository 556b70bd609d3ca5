using MeshClient.Balancing;
using MeshClient.Resilience;
using Polly;

namespace MeshClient.Handlers;

/// <summary>
/// The innermost mesh handler: runs one attempt on one endpoint through the service's Polly attempt pipeline
/// (the attempt timeout). It sits inside the balancer, so a timed-out attempt counts against its endpoint.
/// </summary>
internal sealed class MeshAttemptHandler : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!request.Options.TryGetValue(MeshRequestContext.Key, out var mesh) || mesh.Resilience is not ServiceResilience resilience)
        {
            return base.SendAsync(request, cancellationToken);
        }

        return SendWithPipelineAsync(resilience.Attempt, request, cancellationToken);
    }

    private async Task<HttpResponseMessage> SendWithPipelineAsync(ResiliencePipeline<HttpResponseMessage> pipeline, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
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
