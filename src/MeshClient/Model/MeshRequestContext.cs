using Polly;

namespace MeshClient.Model;

/// <summary>
/// The state of one logical call across its attempts, as every feature reads it: which endpoints were tried, how
/// many attempts were made, which endpoint served the last one and with which policy. Created once per call by the
/// outermost mesh handler and carried on the request (one typed key). Each feature keeps its own part of the call
/// elsewhere: the retry state rides in Polly's <see cref="ResilienceContext"/> (<c>Resilience/RetryState</c>).
/// </summary>
internal sealed class MeshRequestContext
{
    public static readonly HttpRequestOptionsKey<MeshRequestContext> Key = new("MeshClient.RequestContext");

    private EndpointState?[] _tried = new EndpointState?[2];

    public MeshRequestContext(string serviceName)
    {
        ServiceName = serviceName;
        Backend = serviceName;
    }

    public string ServiceName { get; }

    /// <summary>
    /// Gets or sets the service whose endpoints, balancer and resilience the call uses: <see cref="ServiceName"/>, or
    /// the backend its route chose (<c>Routing/</c>), decided once before the first attempt so that a retry stays in it.
    /// </summary>
    public string Backend { get; set; }

    /// <summary>Gets or sets the name of the route that chose <see cref="Backend"/>, or <see langword="null"/> for a service without routes.</summary>
    public string? Route { get; set; }

    public int Attempts { get; private set; }

    public int TriedCount { get; private set; }

    public EndpointEntry? LastEndpoint { get; private set; }

    public string? Policy { get; private set; }

    /// <summary>
    /// Gets or sets the URI of the current attempt, as the balancer rewrote it: a connection opened for a request whose
    /// URI is another object (a redirect target) is not a connection to a mesh endpoint.
    /// </summary>
    public Uri? AttemptUri { get; set; }

    /// <summary>
    /// Gets or sets the pipeline around one attempt of this call (the service's attempt timeout), set by the retry
    /// handler and run by the attempt handler inside the balancer.
    /// </summary>
    public ResiliencePipeline<HttpResponseMessage>? AttemptPipeline { get; set; }

    /// <summary>
    /// Gets the call's own deadline, from its start (gRPC's <c>grpc-timeout</c> request header, or its route's
    /// <c>Timeout</c>, whichever is shorter), or <see langword="null"/>: it bounds the service's total and attempt
    /// timeouts for this call (the shorter wins).
    /// </summary>
    public TimeSpan? Deadline { get; private set; }

    private long _deadlineStart;
    private bool _exactDeadline;

    /// <summary>Sets the call's deadline, counted from <paramref name="startTimestamp"/> (a <see cref="TimeProvider"/> timestamp).</summary>
    public void SetDeadline(TimeSpan deadline, long startTimestamp)
    {
        Deadline = deadline;
        _deadlineStart = startTimestamp;
    }

    /// <summary>
    /// Bounds the call's deadline by <paramref name="timeout"/> counted from <paramref name="startTimestamp"/> (a route's
    /// <c>Timeout</c>): the shorter of the two wins. A deadline set here has no <see cref="DeadlineGrace"/> (no other
    /// timer ends the call first).
    /// </summary>
    public void LimitDeadline(TimeSpan timeout, long startTimestamp)
    {
        if (Deadline is { } deadline && deadline + DeadlineGrace <= timeout)
        {
            return;
        }

        Deadline = timeout;
        _deadlineStart = startTimestamp;
        _exactDeadline = true;
    }

    /// <summary>
    /// The time left before the call's deadline, plus <see cref="DeadlineGrace"/>, or <see langword="null"/> without a
    /// deadline: what bounds the mesh's timeouts. The grace lets Grpc.Net.Client, whose own timer started a little before
    /// the mesh read the header, end the call first with <c>DEADLINE_EXCEEDED</c>; the mesh's bound is the backstop
    /// (for a caller without such a timer, or one stuck below it).
    /// </summary>
    public TimeSpan? Remaining(TimeProvider time) => Deadline - time.GetElapsedTime(_deadlineStart) + DeadlineGrace;

    /// <summary>Gets a tenth of the deadline, at least 20 ms and at most 250 ms (zero without a deadline, or for one set by <see cref="LimitDeadline"/>).</summary>
    public TimeSpan DeadlineGrace => Deadline is { } deadline && !_exactDeadline
        ? TimeSpan.FromTicks(Math.Clamp(deadline.Ticks / 10, 20 * TimeSpan.TicksPerMillisecond, 250 * TimeSpan.TicksPerMillisecond))
        : TimeSpan.Zero;

    /// <summary>
    /// Whether the call's deadline has passed, within <see cref="DeadlineGrace"/> (Grpc.Net.Client's own timer, which
    /// cancels the call at the deadline, started a little before this handler read the header).
    /// </summary>
    public bool DeadlinePassed(TimeProvider time) =>
        Deadline is { } deadline && time.GetElapsedTime(_deadlineStart) >= deadline - DeadlineGrace;

    /// <summary>Gets a value indicating whether the call has sent an attempt before the current one.</summary>
    public bool IsRetry => Attempts > 0;

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
    /// Takes the context of a finished call off its request before a redirect hop: one to a pass-through host must not
    /// find the first service's retries, budget and timeouts there.
    /// </summary>
    public static void Remove(HttpRequestMessage request) =>
        ((IDictionary<string, object?>)request.Options).Remove(Key.Key);

    /// <summary>Notes the endpoint an attempt goes to (called by the picker when it hands out a lease).</summary>
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
