using MeshClient.Model;

namespace MeshClient.Balancing;

/// <summary>
/// One admitted attempt on one endpoint, as <see cref="EndpointPicker"/> hands it out (grpc-dotnet's
/// <c>PickResult</c> with its completion, as a struct: nothing is allocated). The endpoint counts the attempt as in
/// flight until <see cref="Complete"/>, which records the outcome first and then releases the in-flight count, so
/// that no caller has to know that order.
/// </summary>
internal readonly struct EndpointLease
{
    private readonly ServiceTable _table;
    private readonly EndpointSnapshot _snapshot;
    private readonly MeshRequestContext? _context;
    private readonly long _start;
    private readonly bool _isProbe;

    internal EndpointLease(ServiceTable table, EndpointSnapshot snapshot, EndpointEntry endpoint, bool isProbe, long start, MeshRequestContext? context = null)
    {
        _table = table;
        _snapshot = snapshot;
        Endpoint = endpoint;
        _isProbe = isProbe;
        _start = start;
        _context = context;
    }

    /// <summary>Gets the endpoint the attempt goes to.</summary>
    public EndpointEntry Endpoint { get; }

    /// <summary>
    /// Ends the attempt: its latency and outcome go to the balancer and to outlier detection (and a <c>Retry-After</c>
    /// the endpoint sent, when <paramref name="retryAfter"/> is positive), then the endpoint's in-flight count drops.
    /// The outcome first: between the two, the attempt counts as in flight or as a failure, never as neither, so the
    /// admission limit of a failing endpoint (failures + in flight) has no gap to let one more through.
    /// <para>
    /// After a <c>Retry-After</c>, the call is told whether another endpoint can take its next attempt now
    /// (<see cref="MeshRequestContext.RetryElsewhereAtOnce"/>): the retry then goes there at once; the delay the endpoint
    /// asked for only makes sense when the same endpoint would be tried again.
    /// </para>
    /// </summary>
    /// <param name="outcome">How the attempt ended (<see cref="OutcomeClassifier"/>).</param>
    /// <param name="retryAfter">How long the endpoint asked not to be called, or zero.</param>
    public void Complete(AttemptOutcome outcome, TimeSpan retryAfter = default)
    {
        _table.RecordOutcome(_snapshot, Endpoint, _start, outcome, _isProbe, retryAfter);
        if (retryAfter > TimeSpan.Zero)
        {
            _table.RecordRetryAfter(Endpoint, retryAfter);
            if (_context is not null)
            {
                _context.RetryElsewhereAtOnce = AnotherEndpointCanTakeTheRetry(_context);
            }
        }

        Endpoint.State.OnAttemptEnded();
    }

    /// <summary>
    /// Whether an endpoint of the snapshot other than this one, healthy, not tried by the call and able to admit an
    /// ordinary attempt now, can take the call's next attempt (the balancer picks an untried endpoint first).
    /// </summary>
    private bool AnotherEndpointCanTakeTheRetry(MeshRequestContext context)
    {
        foreach (var candidate in _snapshot.Active)
        {
            var state = candidate.State;
            if (!ReferenceEquals(candidate, Endpoint)
                && state.Status == EndpointStatus.Healthy
                && !context.HasTried(state)
                && state.CanAdmitOrdinary(_snapshot.Panic, _snapshot.UnreachableAdmitted))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Reads the load the endpoint reported in a response's headers or trailers (ORCA), when the service's policy uses it
    /// (<see cref="ServiceTable.RecordLoadReport"/>).
    /// </summary>
    /// <param name="headers">The response's headers, or its trailers.</param>
    public void ReadLoadReport(System.Net.Http.Headers.HttpHeaders headers) => _table.RecordLoadReport(_snapshot, Endpoint, headers);

    /// <summary>
    /// Marks the response headers of a gRPC call whose body (messages, then trailers with the status) is still to come:
    /// the time to the headers is the endpoint's latency sample (a stream's length is the caller's business, not the
    /// endpoint's speed), and the call stops being load for the pick but stays open on the endpoint
    /// (<see cref="EndpointState.OpenStreams"/>) until <see cref="CompleteStream"/>, called once, when the body ends.
    /// </summary>
    /// <returns>The timestamp of the headers, for <see cref="CompleteStream"/>.</returns>
    public long Answered()
    {
        var answeredAt = _table.RecordAnswer(_snapshot, Endpoint, _start);
        Endpoint.State.OnAnswered();
        return answeredAt;
    }

    /// <summary>
    /// Ends a call marked by <see cref="Answered"/> when its response body ended: the outcome its trailers said (or
    /// <see cref="AttemptOutcome.Cancelled"/> when the caller let go of the body first) goes to outlier detection, a
    /// failure also to the balancer as a failure sample (the penalty, not the stream's length), then the stream is released.
    /// </summary>
    /// <param name="outcome">How the call ended (<see cref="OutcomeClassifier.OfGrpcStatus"/> of its trailers).</param>
    /// <param name="retryAfter">How long the endpoint asked not to be called (a pushback), or zero.</param>
    /// <param name="answeredAt">The timestamp <see cref="Answered"/> returned.</param>
    public void CompleteStream(AttemptOutcome outcome, TimeSpan retryAfter, long answeredAt)
    {
        _table.RecordLateOutcome(_snapshot, Endpoint, _start, answeredAt, outcome, _isProbe, retryAfter);
        if (retryAfter > TimeSpan.Zero)
        {
            _table.RecordRetryAfter(Endpoint, retryAfter);
        }

        Endpoint.State.OnStreamEnded();
    }
}
