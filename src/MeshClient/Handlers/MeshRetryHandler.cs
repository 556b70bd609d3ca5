using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using MeshClient.Model;
using MeshClient.Resilience;
using MeshClient.Routing;
using Polly.Timeout;

namespace MeshClient.Handlers;

/// <summary>
/// The mesh's second step, below <see cref="MeshCallHandler"/>: runs a call through its service's resilience — the
/// total timeout and the attempt timeout (<see cref="CallTimeout"/>), and the retry loop: the predicate
/// (<see cref="RetryPredicate"/>, with the retry budget and the requeue of a refused connection), the wait
/// (<see cref="RetryDelay"/>: none when the retry can go to another endpoint at once, else Retry-After capped at
/// <c>RetryMaxDelay</c>, else backoff with jitter). The service is the call's <see cref="MeshRequestContext.Backend"/>
/// (its route's backend, if routed). Each try goes through the hedging step (<see cref="MeshHedgingHandler"/>) to the
/// balancer (<see cref="MeshBalancingHandler"/>), which picks an endpoint not tried yet. A retry is counted when it is
/// sent; one charged to the budget but not sent (the call ended in its backoff) is refunded. When the call's deadline
/// ended it, a gRPC caller gets a trailers-only <c>DEADLINE_EXCEEDED</c> (<see cref="GrpcProtocol.DeadlineExceededAnswer"/>)
/// rather than the timeout's exception, an HTTP caller <see cref="DeadlineExceededException"/> when the deadline of the
/// work in progress passed (<see cref="DeadlinePropagation.Exceeded"/>; a route's <c>Timeout</c> alone stays the
/// timeout's own exception). First of all, once per call, a service with routes has the call's route and backend
/// decided (<see cref="MeshRouter.RouteAsync"/>): every try then stays in that backend while it has a healthy endpoint
/// the call has not tried, and moves to another backend of the route when it has none (<see cref="MeshRouter.TryFailover"/>).
/// </summary>
/// <remarks>
/// A loop of our own rather than Polly's retry and timeout strategies: a call through two Polly pipelines allocated
/// 1.9 KB of async state machines in real traffic (issue 19), and this loop's state machine is pooled
/// (<see cref="PoolingAsyncValueTaskMethodBuilder{TResult}"/>), as is its timeout source.
/// </remarks>
internal sealed class MeshRetryHandler(ResilienceRegistry registry, MeshHedgingHandler attempts, MeshRouter? router = null)
{
    /// <summary>
    /// How early a timeout may fire before the deadline it was set for: a timer's period is counted in whole
    /// milliseconds (a 912.99 ms timeout fires after 912 ms), and 16 ms on some systems.
    /// </summary>
    private static readonly TimeSpan TimerSlack = TimeSpan.FromMilliseconds(16);

    /// <summary>How many times a call that nothing was sent for may move to another backend (a bound on a race of ejections).</summary>
    private const int MaxFailovers = 4;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<HttpResponseMessage> SendAsync(MeshCallHandler outer, MeshRequestContext call, HttpRequestMessage request, long startTimestamp, CancellationToken cancellationToken)
    {
        if (router is not null)
        {
            // A service with routes: its backend (left only by TryFailover below; the route's Timeout counts from the call's start).
            await router.RouteAsync(request, call, startTimestamp, cancellationToken).ConfigureAwait(false);
        }

        var resilience = registry.Get(call.Backend); // the service's own, or its route's backend's
        resilience.Budget.OnRequest();
        var timeout = CallTimeout.Start(registry.Time, resilience.Settings, call, cancellationToken);
        var retry = default(RetryState);
        var failovers = 0;
        try
        {
            while (true)
            {
                HttpResponseMessage? response = null;
                Exception? error = null;
                try
                {
                    response = await attempts.SendAsync(outer, call, timeout, request).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    error = ex;
                }

                if (error is NoHealthyEndpointException && router is not null && failovers < MaxFailovers && router.TryFailover(call, exhausted: true))
                {
                    // The call's backend has no endpoint left for it (ejected since the route chose it): nothing was
                    // sent, so another backend of its route takes it at once, outside the retry count and budget.
                    failovers++;
                    continue;
                }

                if (!registry.Predicate.ShouldRetry(resilience, call, request, response, error, timeout.CallEnded, ref retry))
                {
                    return error is null ? response! : Fail(error, timeout, call, request);
                }

                // A routed call whose backend has no healthy endpoint it has not tried goes to another backend of its
                // route, at once: that is elsewhere (as a Retry-After retry that another endpoint can take).
                var delay = router is not null && router.TryFailover(call)
                    ? TimeSpan.Zero
                    : RetryDelay.Next(retry, call, response, resilience.Settings, registry.Time, registry.Random);
                response?.Dispose();
                timeout.ContinueCall();
                if (delay > TimeSpan.Zero)
                {
                    try
                    {
                        await Task.Delay(delay, registry.Time, timeout.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException ex)
                    {
                        return Fail(ex, timeout, call, request);
                    }
                }

                // The retry the budget was charged for is being sent.
                resilience.OnRetrySent(retry.PendingRetry!);
                retry.PendingRetry = null;
            }
        }
        finally
        {
            if (retry.PendingRetry is not null)
            {
                resilience.Budget.Refund();
            }

            timeout.Return();
        }
    }

    /// <summary>
    /// Ends a call that failed: the total timeout's cancellation becomes a <see cref="TimeoutRejectedException"/>; a
    /// timeout at the call's deadline (within <see cref="TimerSlack"/>) becomes, for gRPC, its <c>DEADLINE_EXCEEDED</c>
    /// answer, for HTTP <see cref="DeadlineExceededException"/> when the inherited deadline passed; anything else is
    /// rethrown as it was.
    /// </summary>
    private HttpResponseMessage Fail(Exception error, CallTimeout timeout, MeshRequestContext call, HttpRequestMessage request)
    {
        if (error is OperationCanceledException && timeout.CallTimedOut)
        {
            error = timeout.CallTimeoutException(error);
        }

        if (error is TimeoutRejectedException rejected
            && call.Remaining(registry.Time) <= TimerSlack
            && (GrpcProtocol.IsGrpc(request) || call.InheritedDeadline is { } inherited && inherited.Remaining <= TimerSlack))
        {
            // The call's deadline ended it (its grpc-timeout, its route's Timeout or an inherited one bounds the mesh's
            // timeouts): for gRPC the DEADLINE_EXCEEDED answer, for HTTP DeadlineExceededException when the deadline of
            // the work in progress passed (a route's Timeout alone stays the timeout's own exception).
            return DeadlinePropagation.Exceeded(request, call, rejected);
        }

        ExceptionDispatchInfo.Throw(error);
        return null!; // not reached
    }
}
