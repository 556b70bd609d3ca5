using Polly;

namespace MeshClient.Model;

/// <summary>
/// The state of one logical call across its attempts, as every feature reads it: which endpoints were tried, how
/// many attempts were made, which endpoint served the last one and with which policy. Created once per call by the
/// outermost mesh handler and carried on the request (one typed key). Each feature keeps its own part of the call
/// elsewhere: the retry state rides in Polly's <see cref="ResilienceContext"/> (<c>Resilience/RetryState</c>).
/// </summary>
/// <remarks>
/// One attempt at a time touches the context, so it takes no lock, except once a call is hedged
/// (<see cref="EnterConcurrentAttempts"/>, <c>Hedging/</c>): from then on, several attempts of the call pick, note and
/// send at once, and the tried endpoints, the attempt count, the last endpoint and the attempt URIs change under one
/// lock that the context makes then. A call that is never hedged pays one null check per access.
/// </remarks>
internal sealed class MeshRequestContext
{
    public static readonly HttpRequestOptionsKey<MeshRequestContext> Key = new("MeshClient.RequestContext");

    private EndpointState?[] _tried = new EndpointState?[2];

    // Null until the call is hedged (EnterConcurrentAttempts): then the state below changes under it.
    private Lock? _sync;

    // While hedged: the URIs of the attempts sent since (the current one is also AttemptUri).
    private Uri?[]? _attemptUris;
    private int _attemptUriCount;
    private Uri? _attemptUri;

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
    /// URI is another object (a redirect target) is not a connection to a mesh endpoint. Once the call is hedged, the
    /// latest attempt's; <see cref="IsAttemptUri"/> knows every attempt's.
    /// </summary>
    public Uri? AttemptUri
    {
        get => _attemptUri;
        set
        {
            if (Volatile.Read(ref _sync) is { } sync)
            {
                lock (sync)
                {
                    _attemptUri = value;
                    AddAttemptUri(value);
                }

                return;
            }

            _attemptUri = value;
        }
    }

    /// <summary>
    /// Whether <paramref name="uri"/> is the URI an attempt of this call was rewritten to (the same object): the current
    /// attempt's, or, once the call is hedged, that of any attempt sent since.
    /// </summary>
    public bool IsAttemptUri(Uri? uri)
    {
        if (uri is null)
        {
            return false;
        }

        if (Volatile.Read(ref _sync) is not { } sync)
        {
            return ReferenceEquals(_attemptUri, uri);
        }

        lock (sync)
        {
            for (var i = 0; i < _attemptUriCount; i++)
            {
                if (ReferenceEquals(_attemptUris![i], uri))
                {
                    return true;
                }
            }

            return ReferenceEquals(_attemptUri, uri);
        }
    }

    /// <summary>
    /// Gets a value indicating whether the call is hedged: several of its attempts may be in flight at once
    /// (<see cref="EnterConcurrentAttempts"/>).
    /// </summary>
    public bool IsHedged => Volatile.Read(ref _sync) is not null;

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
        if (Volatile.Read(ref _sync) is not null)
        {
            return;
        }

        var sync = new Lock();
        lock (sync)
        {
            AddAttemptUri(_attemptUri);
            Volatile.Write(ref _sync, sync);
        }
    }

    /// <summary>Marks a hedged try as answered before its losers are cancelled (<see cref="HedgeSettled"/>), or clears that mark.</summary>
    public void SetHedgeSettled(bool settled)
    {
        if (Volatile.Read(ref _sync) is { } sync)
        {
            lock (sync)
            {
                HedgeSettled = settled;
            }

            return;
        }

        HedgeSettled = settled;
    }

    /// <summary>
    /// Names the endpoint that served the call (the span's endpoint) when a hedged try was won by an attempt that was not
    /// the last one picked.
    /// </summary>
    public void OnServedBy(EndpointEntry endpoint)
    {
        if (Volatile.Read(ref _sync) is { } sync)
        {
            lock (sync)
            {
                LastEndpoint = endpoint;
            }

            return;
        }

        LastEndpoint = endpoint;
    }

    /// <summary>Sets or clears <see cref="UntriedOnly"/> (under the lock once hedged).</summary>
    public void SetUntriedOnly(bool untriedOnly)
    {
        if (Volatile.Read(ref _sync) is { } sync)
        {
            lock (sync)
            {
                UntriedOnly = untriedOnly;
            }

            return;
        }

        UntriedOnly = untriedOnly;
    }

    private void AddAttemptUri(Uri? uri)
    {
        if (uri is null)
        {
            return;
        }

        _attemptUris ??= new Uri?[4];
        if (_attemptUriCount == _attemptUris.Length)
        {
            Array.Resize(ref _attemptUris, _attemptUriCount * 2);
        }

        _attemptUris[_attemptUriCount++] = uri;
    }

    /// <summary>
    /// Gets or sets the pipeline around one attempt of this call (the service's attempt timeout), set by the retry
    /// handler and run by the attempt handler inside the balancer.
    /// </summary>
    public ResiliencePipeline<HttpResponseMessage>? AttemptPipeline { get; set; }

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

    /// <summary>Gets a value indicating whether the call has sent an attempt before the current one.</summary>
    public bool IsRetry => Attempts > 0;

    public bool HasTried(EndpointState state)
    {
        if (Volatile.Read(ref _sync) is { } sync)
        {
            lock (sync)
            {
                return HasTriedCore(state);
            }
        }

        return HasTriedCore(state);
    }

    private bool HasTriedCore(EndpointState state)
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
        if (Volatile.Read(ref _sync) is { } sync)
        {
            lock (sync)
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

        if (TriedCount == _tried.Length)
        {
            Array.Resize(ref _tried, TriedCount * 2);
        }

        _tried[TriedCount++] = endpoint.State;
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
