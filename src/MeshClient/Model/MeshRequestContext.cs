namespace MeshClient.Model;

/// <summary>
/// The state of one logical call across its attempts, as every feature reads it: which endpoints were tried, how
/// many attempts were made, which endpoint served the last one and with which policy. Created once per call by the
/// outermost mesh handler and handed down the mesh's steps as an argument (never stored on the request: its options
/// dictionary cost 239 B a request, issue 19). Each feature keeps its own part of the call elsewhere: the retry state
/// is a local of the retry loop (<c>Resilience/RetryState</c>), the timeouts a pooled <c>Resilience/CallTimeout</c>.
/// </summary>
/// <remarks>
/// One attempt at a time touches the context, so it takes no lock, except once a call is hedged
/// (<see cref="EnterConcurrentAttempts"/>, <c>Hedging/</c>): from then on, several attempts of the call pick, note and
/// send at once, and the tried endpoints, the attempt count and the last endpoint change under the context's own
/// monitor from then on. A call that is never hedged pays one null check per access.
/// </remarks>
internal sealed class MeshRequestContext
{
    // The first endpoint tried is a field: a call that succeeds at once allocates no array.
    private EndpointState? _firstTried;
    private EndpointState?[]? _tried;

    // False until the call is hedged (EnterConcurrentAttempts): then the state below changes under the context's own
    // monitor. Not a Lock object: the context is made on every call, and a field more is 8 bytes more on each (issue 19);
    // the context is internal, so no other code can lock on it.
    private volatile bool _concurrent;

    // The route and backend of a routed call (shared, immutable), or null.
    private CallRoute? _route;

    // The last attempt's locality under zone routing: 0 none, 1 local, 2 remote (a byte in the object's padding: the
    // context's size does not change).
    private byte _locality;

    public MeshRequestContext(string serviceName)
    {
        ServiceName = serviceName;
    }

    public string ServiceName { get; }

    /// <summary>
    /// Gets the service whose endpoints, balancer and resilience the call uses: <see cref="ServiceName"/>, or the backend
    /// its route chose (<c>Routing/</c>, <see cref="SetRoute"/>), decided before the first attempt; a retry stays in it
    /// while it has a healthy endpoint the call has not tried.
    /// </summary>
    public string Backend => _route?.Backend ?? ServiceName;

    /// <summary>Gets the name of the route that chose <see cref="Backend"/>, or <see langword="null"/> for a service without routes.</summary>
    public string? Route => _route?.Name;

    /// <summary>Gets the call's route and backend, or <see langword="null"/> for a service without routes.</summary>
    public CallRoute? CallRoute => _route;

    /// <summary>
    /// Sets the call's route and backend: the router, before the first attempt, and before a retry when the backend has
    /// no healthy endpoint the call has not tried (<c>MeshRouter.TryFailover</c>).
    /// </summary>
    public void SetRoute(CallRoute route) => _route = route;

    public int Attempts { get; private set; }

    public int TriedCount { get; private set; }

    public EndpointEntry? LastEndpoint { get; private set; }

    public string? Policy { get; private set; }

    /// <summary>
    /// Gets a value indicating whether the call is hedged: several of its attempts may be in flight at once
    /// (<see cref="EnterConcurrentAttempts"/>).
    /// </summary>
    public bool IsHedged => _concurrent;

    /// <summary>
    /// Gets or sets a value indicating whether the next pick of this call may only take an endpoint it has not tried: set
    /// by hedging for a hedge (never the endpoint an attempt is already waiting on), cleared by that pick
    /// (<see cref="OnAttempt"/>) or by hedging when the hedge found no such endpoint (<see cref="SetUntriedOnly"/>).
    /// </summary>
    public bool UntriedOnly { get; private set; }

    /// <summary>
    /// Gets a value indicating whether a hedged try of the call has its answer, so that every attempt of it still in
    /// flight is being cancelled by hedging: such a cancellation says nothing of its endpoint, whatever the deadline.
    /// </summary>
    public bool HedgeSettled { get; private set; }

    /// <summary>
    /// Lets several attempts of this call run at once (hedging calls it before its first hedge): from then on, the
    /// context changes under a lock. Idempotent.
    /// </summary>
    public void EnterConcurrentAttempts()
    {
        _concurrent = true;
    }

    /// <summary>Marks a hedged try as answered before its losers are cancelled (<see cref="HedgeSettled"/>), or clears that mark.</summary>
    public void SetHedgeSettled(bool settled) => Write(static (call, value) => call.HedgeSettled = value, settled);

    /// <summary>
    /// Names the endpoint that served the call (the span's endpoint) when a hedged try was won by an attempt that was not
    /// the last one picked.
    /// </summary>
    public void OnServedBy(EndpointEntry endpoint) => Write(static (call, value) => call.LastEndpoint = value, endpoint);

    /// <summary>Sets or clears <see cref="UntriedOnly"/> (under the lock once hedged).</summary>
    public void SetUntriedOnly(bool untriedOnly) => Write(static (call, value) => call.UntriedOnly = value, untriedOnly);

    /// <summary>
    /// Sets one field of the context: under its lock once the call is hedged (<see cref="EnterConcurrentAttempts"/>), so
    /// that the readers that lock see it with the fields around it; a plain write before. The setter is a static lambda
    /// (cached once): no allocation.
    /// </summary>
    private void Write<T>(Action<MeshRequestContext, T> set, T value)
    {
        if (_concurrent)
        {
            lock (this)
            {
                set(this, value);
            }

            return;
        }

        set(this, value);
    }

    // The call's deadline, if it has one: a second object, made only then, so that a call without one carries a single
    // null reference (no deadline fields in every call's context).
    private CallDeadline? _deadline;

    /// <summary>
    /// Gets the call's deadline, from its start, or <see langword="null"/>: the shortest of its own (gRPC's
    /// <c>grpc-timeout</c> request header, <see cref="SetDeadline"/>), its route's <c>Timeout</c> (<see cref="LimitDeadline"/>)
    /// and the one it inherits from the work in progress (<see cref="MeshDeadline"/>, <see cref="Inherit"/>). It bounds
    /// the service's total and attempt timeouts for this call (the shorter wins), and no retry is made once it has passed.
    /// </summary>
    public TimeSpan? Deadline => _deadline?.Deadline;

    /// <summary>
    /// Gets the deadline this call inherited from the work in progress (<see cref="MeshDeadline.Current"/> when it began),
    /// or <see langword="null"/>.
    /// </summary>
    public MeshDeadline? InheritedDeadline => _deadline?.Inherited;

    /// <summary>
    /// Gets the request header that sends the inherited deadline on with each attempt (<c>grpc-timeout</c> when it is
    /// shorter than a gRPC call's own, <see cref="MeshDeadline.HeaderName"/> for HTTP), or <see langword="null"/>.
    /// </summary>
    public string? DeadlineHeader => _deadline?.Header;

    /// <summary>
    /// Sets the call's own deadline (a gRPC call's <c>grpc-timeout</c>), counted from <paramref name="startTimestamp"/> (a
    /// <see cref="TimeProvider"/> timestamp), with its grace: a tenth of the deadline, at least 20 ms and at most 250 ms.
    /// The grace lets Grpc.Net.Client, whose own timer started a little before the mesh read the header, end the call
    /// first with <c>DEADLINE_EXCEEDED</c>; the mesh's bound is the backstop (for a caller without such a timer, or one
    /// stuck below it).
    /// </summary>
    public void SetDeadline(TimeSpan deadline, long startTimestamp)
    {
        var grace = TimeSpan.FromTicks(Math.Clamp(deadline.Ticks / 10, 20 * TimeSpan.TicksPerMillisecond, 250 * TimeSpan.TicksPerMillisecond));
        Limit(deadline, deadline - grace, deadline + grace, startTimestamp);
    }

    /// <summary>
    /// Bounds the call's deadline by <paramref name="timeout"/> counted from <paramref name="startTimestamp"/> (a route's
    /// <c>Timeout</c>, as an HTTPRoute's request timeout): the shorter wins, without grace (no other timer ends the
    /// call first).
    /// </summary>
    public void LimitDeadline(TimeSpan timeout, long startTimestamp) => Limit(timeout, timeout, timeout, startTimestamp);

    /// <summary>
    /// Bounds the call by the deadline of the work in progress, <paramref name="remaining"/> after
    /// <paramref name="startTimestamp"/> (the same start as <see cref="SetDeadline"/>'s), without grace: no other timer
    /// races the mesh's. <paramref name="header"/> sends it on with each attempt (<see cref="DeadlineHeader"/>).
    /// </summary>
    public void Inherit(MeshDeadline deadline, TimeSpan remaining, long startTimestamp, string? header)
    {
        var call = Limit(remaining, remaining, remaining, startTimestamp);
        call.Inherited = deadline;
        call.Header = header;
    }

    private CallDeadline Limit(TimeSpan deadline, TimeSpan passedAfter, TimeSpan boundAfter, long startTimestamp)
    {
        if (_deadline is not { } call)
        {
            return _deadline = new CallDeadline { Start = startTimestamp, Deadline = deadline, PassedAfter = passedAfter, BoundAfter = boundAfter };
        }

        // Both counted from the call's start: the earlier of each wins.
        call.Deadline = call.Deadline < deadline ? call.Deadline : deadline;
        call.PassedAfter = call.PassedAfter < passedAfter ? call.PassedAfter : passedAfter;
        call.BoundAfter = call.BoundAfter < boundAfter ? call.BoundAfter : boundAfter;
        return call;
    }

    /// <summary>
    /// The time left before the call's deadline (plus the grace of its own deadline, see <see cref="SetDeadline"/>), or
    /// <see langword="null"/> without a deadline: what bounds the mesh's timeouts.
    /// </summary>
    public TimeSpan? Remaining(TimeProvider time) => _deadline is { } call ? call.BoundAfter - time.GetElapsedTime(call.Start) : null;

    /// <summary>
    /// Whether the call's deadline has passed: its own within its grace (Grpc.Net.Client's own timer, which cancels the
    /// call at the deadline, started a little before this handler read the header), an inherited one exactly.
    /// </summary>
    public bool DeadlinePassed(TimeProvider time) => _deadline is { } call && time.GetElapsedTime(call.Start) >= call.PassedAfter;

    /// <summary>
    /// Gets or sets a value indicating whether the last attempt's endpoint asked not to be called (<c>Retry-After</c>, a
    /// gRPC pushback) while another healthy endpoint that this call has not tried can take the next attempt: the retry
    /// then goes there at once, without the delay the endpoint asked for (set when the attempt's lease completes,
    /// cleared by the next attempt).
    /// </summary>
    public bool RetryElsewhereAtOnce { get; set; }

    /// <summary>
    /// Gets the locality of the call's last attempt, <c>local</c> or <c>remote</c> (the caller's zone or another), when
    /// its service routes by zone; otherwise <see langword="null"/>.
    /// </summary>
    public string? Locality => _locality switch { 1 => "local", 2 => "remote", _ => null };

    /// <summary>Notes the locality of the attempt being sent (the picker of a service with zone routing on).</summary>
    /// <param name="local">Whether the endpoint is in the caller's zone.</param>
    public void SetLocality(bool local) => _locality = local ? (byte)1 : (byte)2;

    /// <summary>Gets a value indicating whether the call has sent an attempt before the current one.</summary>
    public bool IsRetry => Attempts > 0;

    public bool HasTried(EndpointState state)
    {
        if (_concurrent)
        {
            lock (this)
            {
                return HasTriedCore(state);
            }
        }

        return HasTriedCore(state);
    }

    private bool HasTriedCore(EndpointState state)
    {
        if (TriedCount == 0)
        {
            return false;
        }

        if (ReferenceEquals(_firstTried, state))
        {
            return true;
        }

        var tried = _tried;
        for (var i = 0; i < TriedCount - 1; i++)
        {
            if (ReferenceEquals(tried![i], state))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Notes the endpoint an attempt goes to (called by the picker when it hands out a lease).</summary>
    public void OnAttempt(EndpointEntry endpoint, string policy)
    {
        if (_concurrent)
        {
            lock (this)
            {
                UntriedOnly = false;
                OnAttemptCore(endpoint, policy);
            }

            return;
        }

        OnAttemptCore(endpoint, policy);
    }

    private void OnAttemptCore(EndpointEntry endpoint, string policy)
    {
        Attempts++;
        RetryElsewhereAtOnce = false;
        LastEndpoint = endpoint;
        Policy = policy;
        if (HasTriedCore(endpoint.State))
        {
            return;
        }

        if (TriedCount == 0)
        {
            _firstTried = endpoint.State;
        }
        else
        {
            // The endpoints after the first, from the call's first retry on.
            _tried ??= new EndpointState?[2];
            if (TriedCount - 1 == _tried.Length)
            {
                Array.Resize(ref _tried, _tried.Length * 2);
            }

            _tried[TriedCount - 1] = endpoint.State;
        }

        TriedCount++;
    }

    /// <summary>
    /// A call's deadline: the time after its start from which it counts as passed and the one that bounds the mesh's
    /// timeouts (the call's own deadline less and plus its grace, an inherited one exactly; the earlier of each when it
    /// has both), and what it inherited.
    /// </summary>
    private sealed class CallDeadline
    {
        public long Start;
        public TimeSpan Deadline;
        public TimeSpan PassedAfter;
        public TimeSpan BoundAfter;
        public MeshDeadline? Inherited;
        public string? Header;
    }
}
