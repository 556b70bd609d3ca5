namespace MeshClient.Configuration;

/// <summary>
/// Outlier detection, retries and timeouts, bound from <c>Mesh:Resilience</c> (every service) and
/// <c>Mesh:Services:{name}:Resilience</c> (one service). A value left unset (<see langword="null"/>) per service
/// takes the global value, and unset globally takes the default shown. Defaults follow Envoy and Linkerd.
/// </summary>
public sealed class MeshResilienceOptions
{
    /// <summary>
    /// Gets or sets how many consecutive failures (5xx, connection errors, attempt timeouts) eject an endpoint.
    /// Default: 5 (Envoy <c>consecutive_5xx</c>). 0 disables the rule. Valid: 0 to 1000.
    /// </summary>
    public int? ConsecutiveFailures { get; set; }

    /// <summary>
    /// Gets or sets the failure percentage, over <see cref="FailurePercentageWindow"/>, that ejects an endpoint.
    /// Default: 50. 0 disables the rule. Valid: 0 to 100.
    /// </summary>
    public int? FailurePercentageThreshold { get; set; }

    /// <summary>
    /// Gets or sets the number of attempts an endpoint must have had in the window before its failure percentage
    /// counts. Default: 20. Valid: 1 to 100000.
    /// </summary>
    public int? FailurePercentageMinimumRequests { get; set; }

    /// <summary>Gets or sets the rolling window of the failure percentage. Default: 10 s. Valid: 1 s to 10 min.</summary>
    public TimeSpan? FailurePercentageWindow { get; set; }

    /// <summary>
    /// Gets or sets the base ejection time: an endpoint ejected for the n-th time in a row stays out for
    /// n × this, capped at <see cref="MaxEjectionTime"/>. Default: 30 s. Valid: 100 ms to 1 h.
    /// </summary>
    public TimeSpan? BaseEjectionTime { get; set; }

    /// <summary>
    /// Gets or sets how long an endpoint that refused a connection (nothing was sent) stays out: n × this for the
    /// n-th ejection in a row, capped at <see cref="BaseEjectionTime"/>. Such an endpoint is ejected at its first
    /// refusal and whatever <see cref="MaxEjectionPercent"/> says, like a failed active health check in Envoy: a
    /// refused connection is not a guess about health. Default: 1 s. Valid: 10 ms to 1 h.
    /// </summary>
    public TimeSpan? UnreachableEjectionTime { get; set; }

    /// <summary>Gets or sets the longest ejection. Default: 300 s. Valid: 100 ms to 1 h, at least the base time.</summary>
    public TimeSpan? MaxEjectionTime { get; set; }

    /// <summary>
    /// Gets or sets the largest percentage of a service's endpoints that may be ejected at once; one endpoint may
    /// always be. Default: 10 (Envoy). Valid: 0 to 100.
    /// </summary>
    public int? MaxEjectionPercent { get; set; }

    /// <summary>
    /// Gets or sets the panic threshold: when fewer than this percentage of a service's endpoints are healthy,
    /// traffic goes to all of them, ejected or not, rather than failing. Default: 50 (Envoy). 0 disables panic mode.
    /// Valid: 0 to 100.
    /// </summary>
    public int? PanicThresholdPercent { get; set; }

    /// <summary>
    /// Gets or sets how many times a failed request is retried, each time on an endpoint it has not tried yet.
    /// A refused connection (nothing was sent) is retried at once on another endpoint without counting here, up to 4
    /// times per call (Finagle's requeues); every retry takes from the retry budget. Default: 2 (Istio). 0 disables
    /// retries and requeues. Valid: 0 to 10.
    /// </summary>
    public int? MaxRetries { get; set; }

    /// <summary>
    /// Gets or sets the base of the exponential backoff with full jitter between attempts. Default: 25 ms (Envoy).
    /// Valid: 0 to 1 min.
    /// </summary>
    public TimeSpan? RetryBaseDelay { get; set; }

    /// <summary>Gets or sets the cap of the backoff between attempts. Default: 250 ms (Envoy). Valid: 0 to 5 min.</summary>
    public TimeSpan? RetryMaxDelay { get; set; }

    /// <summary>
    /// Gets or sets the retry budget as a percentage of requests: retries may add at most this much load over
    /// <see cref="RetryBudgetWindow"/>, plus <see cref="RetryBudgetMinPerSecond"/>. Default: 20 (Linkerd). Valid: 0 to 1000.
    /// </summary>
    public int? RetryBudgetPercent { get; set; }

    /// <summary>Gets or sets the retries per second always allowed by the budget. Default: 10 (Linkerd). Valid: 0 to 100000.</summary>
    public int? RetryBudgetMinPerSecond { get; set; }

    /// <summary>Gets or sets the window of the retry budget. Default: 10 s (Linkerd). Valid: 1 s to 10 min.</summary>
    public TimeSpan? RetryBudgetWindow { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether non-idempotent requests (POST, PATCH) are retried after the
    /// server may have seen them. Default: <see langword="false"/>: a POST is only resent when the connection was
    /// refused before a byte was sent.
    /// </summary>
    public bool? RetryNonIdempotent { get; set; }

    /// <summary>Gets or sets the timeout of one attempt. Default: 10 s. Valid: 10 ms to 10 min.</summary>
    public TimeSpan? AttemptTimeout { get; set; }

    /// <summary>
    /// Gets or sets how long opening the TCP connection to a mesh endpoint may take (the TLS handshake and the request
    /// are not included). A connection not established by then is treated like a refused one: nothing was sent, so
    /// the call is requeued at once on another endpoint and the endpoint is ejected as unreachable. Applied by the
    /// mesh client's <see cref="SocketsHttpHandler"/> primary handler to connections it opens to mesh endpoints
    /// (hosts outside the mesh keep the handler's own setting); a <see cref="SocketsHttpHandler.ConnectTimeout"/>
    /// the application set on its primary handler wins. Default: 1 s (Linkerd; a connect within a data centre takes
    /// well under a millisecond, and Linux retransmits a lost SYN after 1 s, so waiting longer mostly waits on a node
    /// that is gone). Valid: 10 ms to 10 min, not longer than the attempt timeout.
    /// </summary>
    public TimeSpan? ConnectTimeout { get; set; }

    /// <summary>
    /// Gets or sets the timeout of a whole call, retries and backoff included. Default: 30 s. Valid: 10 ms to 1 h,
    /// at least the attempt timeout.
    /// </summary>
    public TimeSpan? TotalTimeout { get; set; }

    /// <summary>
    /// Gets the hedged requests (<c>Mesh:Resilience:Hedging</c>, per service <c>Mesh:Services:{name}:Resilience:Hedging</c>).
    /// Off by default.
    /// </summary>
    public MeshHedgingOptions Hedging { get; } = new();
}
