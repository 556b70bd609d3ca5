using MeshClient.Model;
using MeshClient.Balancing;
using MeshClient.Resilience;
using Polly;

namespace MeshClient.Handlers;

/// <summary>A handler that sends the request on through a Polly pipeline, with a pooled resilience context.</summary>
internal abstract class PollyPipelineHandler : DelegatingHandler
{
    /// <summary>
    /// Runs the pipeline; each execution of its callback sends the request on. With <paramref name="call"/>, a retry
    /// is counted when it is sent, and one charged to the budget but not sent when the pipeline ends (cancelled in
    /// its backoff) is refunded.
    /// </summary>
    protected async Task<HttpResponseMessage> SendThroughAsync(ResiliencePipeline<HttpResponseMessage> pipeline, HttpRequestMessage request, MeshRequestContext? call, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(ResilienceRegistry.RequestKey, request);
        try
        {
            // Polly turns exceptions into outcomes itself; the callback hands it the inner task as it is.
            return await pipeline.ExecuteAsync(
                static (ctx, state) =>
                {
                    if (state.Call is { PendingRetry: { } reason, Resilience: ServiceResilience resilience } call)
                    {
                        call.PendingRetry = null; // the retry the budget was charged for is being sent
                        resilience.OnRetrySent(reason);
                    }

                    return new ValueTask<HttpResponseMessage>(state.Handler.SendInnerAsync(state.Request, ctx.CancellationToken));
                },
                context,
                (Handler: this, Request: request, Call: call)).ConfigureAwait(false);
        }
        finally
        {
            if (call is { PendingRetry: not null, Resilience: ServiceResilience resilience })
            {
                call.PendingRetry = null;
                resilience.Budget.Refund();
            }

            ResilienceContextPool.Shared.Return(context);
        }
    }

    private Task<HttpResponseMessage> SendInnerAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        base.SendAsync(request, cancellationToken);
}
