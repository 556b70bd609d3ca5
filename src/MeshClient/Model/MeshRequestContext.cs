namespace MeshClient.Model;

/// <summary>
/// The state of one logical call across its attempts, as every feature reads it: which endpoints were tried, how
/// many attempts were made, which endpoint served the last one and with which policy. Created once per call by the
/// outermost mesh handler and handed down the mesh's steps as an argument (never stored on the request: its options
/// dictionary cost 239 B a request, issue 19). Each feature keeps its own part of the call elsewhere: the retry state
/// is a local of the retry loop (<c>Resilience/RetryState</c>), the timeouts a pooled <c>Resilience/CallTimeout</c>.
/// </summary>
internal sealed class MeshRequestContext
{
    // The first endpoint tried is a field: a call that succeeds at once allocates no array.
    private EndpointState? _firstTried;
    private EndpointState?[]? _tried;

    public MeshRequestContext(string serviceName)
    {
        ServiceName = serviceName;
    }

    public string ServiceName { get; }

    public int Attempts { get; private set; }

    public int TriedCount { get; private set; }

    public EndpointEntry? LastEndpoint { get; private set; }

    public string? Policy { get; private set; }

    /// <summary>
    /// Gets the call's own deadline, from its start (gRPC's <c>grpc-timeout</c> request header), or <see langword="null"/>:
    /// it bounds the service's total and attempt timeouts for this call (the shorter wins).
    /// </summary>
    public TimeSpan? Deadline { get; private set; }

    private long _deadlineStart;

    /// <summary>Sets the call's deadline, counted from <paramref name="startTimestamp"/> (a <see cref="TimeProvider"/> timestamp).</summary>
    public void SetDeadline(TimeSpan deadline, long startTimestamp)
    {
        Deadline = deadline;
        _deadlineStart = startTimestamp;
    }

    /// <summary>
    /// The time left before the call's deadline, plus <see cref="DeadlineGrace"/>, or <see langword="null"/> without a
    /// deadline: what bounds the mesh's timeouts. The grace lets Grpc.Net.Client, whose own timer started a little before
    /// the mesh read the header, end the call first with <c>DEADLINE_EXCEEDED</c>; the mesh's bound is the backstop
    /// (for a caller without such a timer, or one stuck below it).
    /// </summary>
    public TimeSpan? Remaining(TimeProvider time) => Deadline - time.GetElapsedTime(_deadlineStart) + DeadlineGrace;

    /// <summary>Gets a tenth of the deadline, at least 20 ms and at most 250 ms (zero without a deadline).</summary>
    public TimeSpan DeadlineGrace => Deadline is { } deadline
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
        Attempts++;
        LastEndpoint = endpoint;
        Policy = policy;
        if (HasTried(endpoint.State))
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
}
