using MeshClient.Model;
using MeshClient.Telemetry;
using Polly;
using Polly.Retry;

namespace MeshClient.Resilience;

/// <summary>The retry predicate of every service's call pipeline: which outcomes are retried, and which are requeued.</summary>
/// <param name="telemetry">Counts the retries refused by the budget.</param>
/// <param name="time">The clock of the calls' deadlines.</param>
/// <param name="isDisposed">Says whether the host is gone (a call in flight then ends with its last outcome).</param>
internal sealed class RetryPredicate(MeshInstrumentation telemetry, TimeProvider time, Func<bool> isDisposed)
{
    /// <summary>
    /// The most connection refusals of one call retried at once, outside <c>MaxRetries</c>: enough to walk a service
    /// whose endpoints are mostly down (the chaos soak: 4 of 5 refusing, and all 5 marked unreachable while the one
    /// that came back was still serving its ejection) without turning a dead service into a retry storm (each one
    /// also takes from the retry budget).
    /// </summary>
    internal const int MaxRequeues = 4;

    /// <summary>Whether the retry being prepared is a requeue (sent at once, without backoff).</summary>
    public static bool IsRequeue(ResilienceContext context) => RetryState.Find(context) is { RequeuePending: true };

    /// <summary>
    /// Whether the retry being prepared is sent at once, without backoff or <c>Retry-After</c>: a requeue, or a retry after
    /// an endpoint asked not to be called while another endpoint can take it
    /// (<see cref="MeshRequestContext.RetryElsewhereAtOnce"/>; the balancer keeps the asking endpoint out of the picks).
    /// </summary>
    public static bool GoesAtOnce(ResilienceContext context) =>
        IsRequeue(context)
        || (context.Properties.TryGetValue(RetryState.RequestKey, out var request)
            && request.Options.TryGetValue(MeshRequestContext.Key, out var call)
            && call.RetryElsewhereAtOnce);

    /// <summary>
    /// Decides a retry: worth one (<see cref="OutcomeClassifier.RetryReason"/>), within <c>MaxRetries</c> (a requeue of a
    /// refused connection within <see cref="MaxRequeues"/> instead), allowed for the method and the body, and paid
    /// for by the retry budget, which is charged now.
    /// </summary>
    public bool ShouldRetry(RetryPredicateArguments<HttpResponseMessage> args, ResilienceSettings settings, RetryBudget budget, string serviceName)
    {
        if (args.Context.CancellationToken.IsCancellationRequested || isDisposed())
        {
            // Disposed: the host is gone; a call that was in flight ends with its last outcome, not a new attempt.
            return false;
        }

        var reason = OutcomeClassifier.RetryReason(args.Outcome.Result, args.Outcome.Exception, out var sent);
        if (reason is null)
        {
            return false;
        }

        var request = args.Context.Properties.GetValue(RetryState.RequestKey, null!);
        if (request is not null && request.Options.TryGetValue(MeshRequestContext.Key, out var call) && call.DeadlinePassed(time))
        {
            // The call's own deadline (gRPC's grpc-timeout) is up: another attempt could only be cut short.
            return false;
        }

        var state = RetryState.Find(args.Context);

        // A refused connection sent nothing and cost a millisecond: it is retried at once on another endpoint without
        // using up MaxRetries (a requeue, as Finagle does), up to MaxRequeues per call.
        var requeues = state?.Requeues ?? 0;
        var requeue = request is not null && args.Outcome.Exception is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }
            && requeues < MaxRequeues;
        var retries = args.AttemptNumber - requeues;
        if (!requeue && retries >= settings.MaxRetries)
        {
            return false;
        }

        if (sent && !settings.RetryNonIdempotent && request is not null && !IsIdempotent(request.Method))
        {
            // The server may have acted on it: a POST is never sent twice unless the user opts in.
            return false;
        }

        if (sent && !ResendableContent.CanResend(request?.Content))
        {
            // The body may have been read and cannot be read again: the caller gets this answer, not a local error.
            return false;
        }

        if (!budget.TryWithdraw())
        {
            telemetry.RetryBudgetExhausted.Add(1, new KeyValuePair<string, object?>(MeshTags.Service, serviceName));
            MeshInstrumentation.AddEvent("mesh.retry_budget.exhausted", MeshTags.Service, serviceName);
            return false;
        }

        // Taken now, so that concurrent failures see it; given back if the call ends before the retry is sent, and
        // counted only when it is sent (the retry handler).
        state ??= RetryState.GetOrAdd(args.Context);
        state.PendingRetry = reason;
        state.RequeuePending = requeue;
        state.Requeues += requeue ? 1 : 0;

        return true;
    }

    internal static bool IsIdempotent(HttpMethod method) =>
        method == HttpMethod.Get || method == HttpMethod.Head || method == HttpMethod.Options
        || method == HttpMethod.Put || method == HttpMethod.Delete || method == HttpMethod.Trace;
}
