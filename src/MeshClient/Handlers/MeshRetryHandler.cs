using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using MeshClient.Model;
using MeshClient.Resilience;
using Polly.Timeout;

namespace MeshClient.Handlers;

/// <summary>
/// The mesh's second step, below <see cref="MeshCallHandler"/>: runs a call through its service's resilience — the
/// total timeout and the attempt timeout (<see cref="CallTimeout"/>), and the retry loop: the predicate
/// (<see cref="RetryPredicate"/>, with the retry budget and the requeue of a refused connection), the wait
/// (<see cref="RetryDelay"/>: Retry-After capped at <c>RetryMaxDelay</c>, else backoff with jitter). Each attempt goes
/// back through the balancer (<see cref="MeshBalancingHandler"/>), which picks an endpoint not tried yet. A retry is
/// counted when it is sent; one charged to the budget but not sent (the call ended in its backoff) is refunded. When
/// the call's gRPC deadline ended it, the caller gets a trailers-only <c>DEADLINE_EXCEEDED</c>
/// (<see cref="GrpcProtocol.DeadlineExceededAnswer"/>) rather than the timeout's exception.
/// </summary>
/// <remarks>
/// A loop of our own rather than Polly's retry and timeout strategies: a call through two Polly pipelines allocated
/// 1.9 KB of async state machines in real traffic (issue 19), and this loop's state machine is pooled
/// (<see cref="PoolingAsyncValueTaskMethodBuilder{TResult}"/>), as is its timeout source.
/// </remarks>
internal sealed class MeshRetryHandler(ResilienceRegistry registry, MeshBalancingHandler balancing)
{
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<HttpResponseMessage> SendAsync(MeshCallHandler outer, MeshRequestContext call, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var resilience = registry.Get(call.ServiceName);
        resilience.Budget.OnRequest();
        var timeout = CallTimeout.Start(registry.Time, resilience.Settings, call, cancellationToken);
        var retry = default(RetryState);
        try
        {
            while (true)
            {
                HttpResponseMessage? response = null;
                Exception? error = null;
                try
                {
                    response = await balancing.SendAsync(outer, call, timeout, request).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    error = ex;
                }

                if (!registry.Predicate.ShouldRetry(resilience, call, request, response, error, timeout.CallEnded, ref retry))
                {
                    return error is null ? response! : Fail(error, timeout, call, request);
                }

                var delay = RetryDelay.Next(retry, response, resilience.Settings, registry.Time, registry.Random);
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
    /// Ends a call that failed: the total timeout's cancellation becomes a <see cref="TimeoutRejectedException"/>, and a
    /// timeout of a gRPC call whose deadline has passed its <c>DEADLINE_EXCEEDED</c> answer; anything else is rethrown as
    /// it was.
    /// </summary>
    private HttpResponseMessage Fail(Exception error, CallTimeout timeout, MeshRequestContext call, HttpRequestMessage request)
    {
        if (error is OperationCanceledException && timeout.CallTimedOut)
        {
            error = timeout.CallTimeoutException(error);
        }

        if (error is TimeoutRejectedException && GrpcProtocol.IsGrpc(request) && call.DeadlinePassed(registry.Time))
        {
            // The call's own deadline ended it (its grpc-timeout bounds the mesh's timeouts): the gRPC answer to that.
            return GrpcProtocol.DeadlineExceededAnswer(request);
        }

        ExceptionDispatchInfo.Throw(error);
        return null!; // not reached
    }
}
