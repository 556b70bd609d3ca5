using Polly;

namespace MeshClient.Resilience;

/// <summary>
/// The retry part of one call's state, owned by the retry feature and carried in the call's Polly
/// <see cref="ResilienceContext"/> (made only when a first retry is decided: a call that succeeds at once has none).
/// </summary>
internal sealed class RetryState
{
    /// <summary>The key of the state in <see cref="ResilienceContext.Properties"/>.</summary>
    public static readonly ResiliencePropertyKey<RetryState> Key = new("MeshClient.RetryState");

    /// <summary>The request of the call, for the retry predicate.</summary>
    public static readonly ResiliencePropertyKey<HttpRequestMessage> RequestKey = new("MeshClient.Request");

    /// <summary>
    /// Gets or sets how many retries of this call were requeues: a connection refused (nothing was sent) retried at
    /// once on another endpoint, outside <c>MaxRetries</c> (Finagle's requeues).
    /// </summary>
    public int Requeues { get; set; }

    /// <summary>Gets or sets a value indicating whether the retry being prepared is a requeue (sent without backoff).</summary>
    public bool RequeuePending { get; set; }

    /// <summary>
    /// Gets or sets the reason of a retry that has been decided (and charged to the service's retry budget) but not
    /// sent yet, during its backoff. When it is sent it is counted; if the call ends first, it is refunded and not
    /// counted.
    /// </summary>
    public string? PendingRetry { get; set; }

    /// <summary>Gets the state of the call <paramref name="context"/> runs, if a retry was decided.</summary>
    /// <param name="context">The call's resilience context.</param>
    public static RetryState? Find(ResilienceContext context) =>
        context.Properties.TryGetValue(Key, out var state) ? state : null;

    /// <summary>Gets the state of the call <paramref name="context"/> runs, making it on the first retry.</summary>
    /// <param name="context">The call's resilience context.</param>
    public static RetryState GetOrAdd(ResilienceContext context)
    {
        if (!context.Properties.TryGetValue(Key, out var state))
        {
            state = new RetryState();
            context.Properties.Set(Key, state);
        }

        return state;
    }
}
