using MeshClient.Model;
using MeshClient.Telemetry;

namespace MeshClient.Resilience;

/// <summary>The retry predicate of every service's calls: which outcomes are retried, and which are requeued.</summary>
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

    /// <summary>
    /// Decides a retry of the attempt that ended with <paramref name="response"/> or <paramref name="exception"/>: the
    /// call still running, retries on at all (<c>MaxRetries</c> above 0), worth one
    /// (<see cref="OutcomeClassifier.RetryReason"/>), before the call's deadline, within <c>MaxRetries</c> (a requeue of
    /// a refused connection within <see cref="MaxRequeues"/> instead), allowed for the method and the body, and paid for
    /// by the retry budget, which is charged now. A retry decided is noted in <paramref name="state"/>.
    /// </summary>
    public bool ShouldRetry(
        ServiceResilience resilience,
        MeshRequestContext call,
        HttpRequestMessage request,
        HttpResponseMessage? response,
        Exception? exception,
        bool callEnded,
        ref RetryState state)
    {
        var settings = resilience.Settings;
        if (callEnded || isDisposed())
        {
            // Disposed: the host is gone; a call that was in flight ends with its last outcome, not a new attempt.
            return false;
        }

        if (settings.MaxRetries == 0 || state.Retries >= settings.MaxRetries + MaxRequeues)
        {
            return false;
        }

        var reason = OutcomeClassifier.RetryReason(response, exception, out var sent);
        if (reason is null)
        {
            return false;
        }

        if (call.DeadlinePassed(time))
        {
            // The call's own deadline (gRPC's grpc-timeout) is up: another attempt could only be cut short.
            return false;
        }

        // A refused connection sent nothing and cost a millisecond: it is retried at once on another endpoint without
        // using up MaxRetries (a requeue, as Finagle does), up to MaxRequeues per call.
        var requeue = exception is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }
            && state.Requeues < MaxRequeues;
        if (!requeue && state.Retries - state.Requeues >= settings.MaxRetries)
        {
            return false;
        }

        if (sent && !settings.RetryNonIdempotent && !IsIdempotent(request.Method))
        {
            // The server may have acted on it: a POST is never sent twice unless the user opts in.
            return false;
        }

        if (sent && !ResendableContent.CanResend(request.Content))
        {
            // The body may have been read and cannot be read again: the caller gets this answer, not a local error.
            return false;
        }

        if (!resilience.Budget.TryWithdraw())
        {
            telemetry.RetryBudgetExhausted.Add(1, new KeyValuePair<string, object?>(MeshTags.Service, resilience.ServiceName));
            MeshInstrumentation.AddEvent("mesh.retry_budget.exhausted", MeshTags.Service, resilience.ServiceName);
            return false;
        }

        // Taken now, so that concurrent failures see it; given back if the call ends before the retry is sent, and
        // counted only when it is sent (the retry loop).
        state.PendingRetry = reason;
        state.RequeuePending = requeue;
        state.Requeues += requeue ? 1 : 0;
        state.Retries++;
        return true;
    }

    internal static bool IsIdempotent(HttpMethod method) =>
        method == HttpMethod.Get || method == HttpMethod.Head || method == HttpMethod.Options
        || method == HttpMethod.Put || method == HttpMethod.Delete || method == HttpMethod.Trace;
}
