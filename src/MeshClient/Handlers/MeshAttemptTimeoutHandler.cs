using MeshClient.Model;
using MeshClient.Resilience;
using Polly;

namespace MeshClient.Handlers;

/// <summary>
/// The innermost mesh handler: runs one attempt on one endpoint through the call's attempt pipeline (the service's
/// attempt timeout, bounded by the time left before the call's deadline). It sits inside the balancer, so a timed-out attempt counts against its endpoint.
/// </summary>
internal sealed class MeshAttemptTimeoutHandler : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        request.Options.TryGetValue(MeshRequestContext.Key, out var call) && call.AttemptPipeline is { } pipeline
            ? SendThroughAsync(pipeline, request, call.Deadline is not null, cancellationToken)
            : base.SendAsync(request, cancellationToken);

    private async Task<HttpResponseMessage> SendThroughAsync(ResiliencePipeline<HttpResponseMessage> pipeline, HttpRequestMessage request, bool hasDeadline, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        if (hasDeadline)
        {
            // Only a call with a deadline needs it: the attempt timeout then reads the deadline through the request
            // (a call without one pays no property write per attempt).
            context.Properties.Set(RetryState.RequestKey, request);
        }
        try
        {
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
