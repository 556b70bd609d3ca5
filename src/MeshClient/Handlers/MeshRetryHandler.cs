using MeshClient.Model;
using MeshClient.Resilience;
using Polly;
using Polly.Timeout;

namespace MeshClient.Handlers;

/// <summary>
/// Runs a call through its service's call pipeline (total timeout, then retry with backoff, Retry-After and the retry
/// budget). When the call's deadline ended it, a gRPC caller gets a trailers-only <c>DEADLINE_EXCEEDED</c>
/// (<see cref="GrpcProtocol.DeadlineExceededAnswer"/>) rather than the timeout's exception, an HTTP caller
/// <see cref="DeadlineExceededException"/> (<see cref="DeadlinePropagation.Exceeded"/>). Each retry goes back through the balancer, which picks an endpoint not tried yet. A retry is counted when
/// it is sent; one charged to the budget but not sent (the call ended in its backoff) is refunded.
/// </summary>
internal sealed class MeshRetryHandler(ResilienceRegistry registry) : DelegatingHandler
{
    /// <summary>
    /// How early a timeout may fire before the deadline it was set for: a timer's period is counted in whole
    /// milliseconds (a 912.99 ms timeout fires after 912 ms), and 16 ms on some systems.
    /// </summary>
    private static readonly TimeSpan TimerSlack = TimeSpan.FromMilliseconds(16);

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!request.Options.TryGetValue(MeshRequestContext.Key, out var call))
        {
            return base.SendAsync(request, cancellationToken);
        }

        var resilience = registry.Get(call.Backend); // the service's own, or its route's backend's
        call.AttemptPipeline = resilience.Attempt;
        resilience.Budget.OnRequest();
        return SendThroughAsync(resilience, request, cancellationToken);
    }

    private async Task<HttpResponseMessage> SendThroughAsync(ServiceResilience resilience, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(RetryState.RequestKey, request);
        try
        {
            // Polly turns exceptions into outcomes itself; the callback hands it the inner task as it is.
            return await resilience.Call.ExecuteAsync(
                static (ctx, state) =>
                {
                    if (RetryState.Find(ctx) is { PendingRetry: { } reason } retry)
                    {
                        retry.PendingRetry = null; // the retry the budget was charged for is being sent
                        state.Resilience.OnRetrySent(reason);
                    }

                    return new ValueTask<HttpResponseMessage>(state.Handler.SendInnerAsync(state.Request, ctx.CancellationToken));
                },
                context,
                (Handler: this, Request: request, Resilience: resilience)).ConfigureAwait(false);
        }
        catch (TimeoutRejectedException ex) when (request.Options.TryGetValue(MeshRequestContext.Key, out var call)
            && call.Remaining(registry.Time) <= TimerSlack
            && (GrpcProtocol.IsGrpc(request) || call.InheritedDeadline is { } inherited && inherited.Remaining <= TimerSlack))
        {
            // The call's deadline ended it (its grpc-timeout, its route's Timeout or an inherited one bounds the mesh's
            // timeouts): for gRPC the DEADLINE_EXCEEDED answer, for HTTP DeadlineExceededException when the deadline of
            // the work in progress passed (a route's Timeout alone stays the timeout's own exception).
            return DeadlinePropagation.Exceeded(request, call, ex);
        }
        finally
        {
            if (RetryState.Find(context) is { PendingRetry: not null } retry)
            {
                retry.PendingRetry = null;
                resilience.Budget.Refund();
            }

            ResilienceContextPool.Shared.Return(context);
        }
    }

    private Task<HttpResponseMessage> SendInnerAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        base.SendAsync(request, cancellationToken);
}
