namespace MeshClient.Resilience;

/// <summary>
/// The retry part of one call's state, owned by the retry feature: a local of the call's retry loop
/// (<c>Handlers/MeshRetryHandler</c>), so a call allocates nothing for it.
/// </summary>
internal struct RetryState
{
    /// <summary>Gets or sets how many retries of this call were decided (requeues included).</summary>
    public int Retries { get; set; }

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
}
