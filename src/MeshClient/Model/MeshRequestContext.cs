namespace MeshClient.Model;

/// <summary>
/// The state of one logical request across its attempts: which endpoints were tried, how many attempts were made,
/// and which endpoint served the last one. Created once per logical request by the outermost mesh handler.
/// </summary>
internal sealed class MeshRequestContext
{
    public static readonly HttpRequestOptionsKey<MeshRequestContext> Key = new("MeshClient.RequestContext");

    public MeshRequestContext(string serviceName)
    {
        ServiceName = serviceName;
    }

    private EndpointState?[] _tried = new EndpointState?[2];

    public string ServiceName { get; }

    public int Attempts { get; private set; }

    public int TriedCount { get; private set; }

    /// <summary>
    /// Gets or sets how many retries of this call were requeues: a connection refused (nothing was sent) retried at
    /// once on another endpoint, outside <c>MaxRetries</c> (Finagle's requeues).
    /// </summary>
    public int Requeues { get; set; }

    /// <summary>Gets or sets a value indicating whether the retry being prepared is a requeue (sent without backoff).</summary>
    public bool RequeuePending { get; set; }

    public EndpointEntry? LastEndpoint { get; private set; }

    public string? Policy { get; set; }

    /// <summary>
    /// Gets or sets the URI of the current attempt, as the balancer rewrote it: a connection opened for a request whose
    /// URI is another object (a redirect target) is not a connection to a mesh endpoint.
    /// </summary>
    public Uri? AttemptUri { get; set; }

    public bool HasTried(EndpointState state)
    {
        var tried = _tried;
        for (var i = 0; i < TriedCount; i++)
        {
            if (ReferenceEquals(tried[i], state))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Gets or sets the reason of a retry that has been decided (and charged to the service's retry budget) but not
    /// sent yet, during its backoff. When it is sent it is counted; if the call ends first, it is refunded and not
    /// counted.
    /// </summary>
    public string? PendingRetry { get; set; }

    /// <summary>Gets or sets the resilience bundle of the service (set by the outer resilience handler).</summary>
    public object? Resilience { get; set; }

    /// <summary>
    /// Takes the context of a finished call off its request before a redirect hop: one to a pass-through host must not
    /// find the first service's retries, budget and timeouts there.
    /// </summary>
    public static void Remove(HttpRequestMessage request) =>
        ((IDictionary<string, object?>)request.Options).Remove(Key.Key);

    public void OnAttempt(EndpointEntry endpoint, string policy)
    {
        Attempts++;
        LastEndpoint = endpoint;
        Policy = policy;
        if (HasTried(endpoint.State))
        {
            return;
        }

        if (TriedCount == _tried.Length)
        {
            Array.Resize(ref _tried, TriedCount * 2);
        }

        _tried[TriedCount++] = endpoint.State;
    }
}
