using MeshClient.Model;
using Microsoft.Extensions.ObjectPool;
using Polly.Timeout;

namespace MeshClient.Resilience;

/// <summary>
/// The timeouts of one call on one <see cref="CancellationTokenSource"/>, linked to the caller's token and armed for
/// whichever comes first: the call's total timeout, or the attempt timeout of the attempt in flight (each bounded by
/// the call's own deadline, gRPC's <c>grpc-timeout</c>, plus its grace: <see cref="MeshRequestContext.Remaining"/>).
/// Either surfaces as Polly's <see cref="TimeoutRejectedException"/>, as when Polly ran them. Written here rather than
/// as two Polly pipelines: their async state machines cost 1.6 KB and about 4 µs a request in real traffic (issue
/// 19), where a pooled source costs nothing and a call without a retry changes its timer twice.
/// </summary>
/// <remarks>
/// A hedged try runs several attempts at once: each gets a timeout of its own (<see cref="ForAttempt"/>), whose source
/// follows the try's token, so that one attempt's timeout ends that attempt alone.
/// With the system clock the objects (and their sources, which keep their timer) are pooled, as Polly pools its
/// sources; with any other clock (a fake one in tests) each call gets a source of that clock, disposed at its end.
/// </remarks>
internal sealed class CallTimeout
{
    private static readonly TimeSpan MinimumTimeout = TimeSpan.FromMilliseconds(1);

    // A source is returned when its call ends, so the pool holds about as many as calls are in flight at once.
    private static readonly ObjectPool<CallTimeout> Pool = new DefaultObjectPool<CallTimeout>(new DefaultPooledObjectPolicy<CallTimeout>(), 1024);

    private TimeProvider _time = TimeProvider.System;
    private CancellationTokenSource? _source;
    private CancellationTokenRegistration _link;
    private CancellationToken _caller;
    private MeshRequestContext? _call;
    private long _start;
    private TimeSpan _total;
    private TimeSpan _attemptTimeout;

    // The attempt timeout the timer is armed for, or zero while it is armed for the end of the call.
    private TimeSpan _armedAttempt;

    /// <summary>Gets the token of the call: cancelled by the caller, the total timeout or the attempt's timeout.</summary>
    public CancellationToken Token => _source!.Token;

    /// <summary>
    /// Gets a value indicating whether the attempt in flight ran out of its own time (not the call's, and the caller
    /// did not cancel): a failure of its endpoint, after which the call may go on.
    /// </summary>
    public bool AttemptTimedOut => _armedAttempt != TimeSpan.Zero && _source!.IsCancellationRequested && !_caller.IsCancellationRequested;

    /// <summary>Gets a value indicating whether the call's total timeout (or its deadline) ended it, the caller not having cancelled.</summary>
    public bool CallTimedOut => _armedAttempt == TimeSpan.Zero && _source!.IsCancellationRequested && !_caller.IsCancellationRequested;

    /// <summary>Gets a value indicating whether the call is over: cancelled by its caller or out of time.</summary>
    public bool CallEnded => _caller.IsCancellationRequested || CallTimedOut;

    /// <summary>Starts the timeouts of a call: the timer is armed for its total timeout.</summary>
    /// <param name="time">The mesh's clock.</param>
    /// <param name="settings">The service's settings.</param>
    /// <param name="call">The call (its deadline bounds both timeouts).</param>
    /// <param name="caller">The caller's token.</param>
    public static CallTimeout Start(TimeProvider time, ResilienceSettings settings, MeshRequestContext call, CancellationToken caller)
    {
        var timeout = ReferenceEquals(time, TimeProvider.System) ? Pool.Get() : new CallTimeout();
        timeout._time = time;
        timeout._caller = caller;
        timeout._call = call;
        timeout._start = time.GetTimestamp();
        timeout._total = WithinDeadline(settings.TotalTimeout, call, time, out _);
        timeout._attemptTimeout = settings.AttemptTimeout;
        timeout._armedAttempt = TimeSpan.Zero;
        timeout.Arm(timeout._total);
        return timeout;
    }

    /// <summary>
    /// The timeout of one attempt of a hedged try, sent alongside others on <paramref name="attemptToken"/> (the try's
    /// token, linked to this call's): a source of its own, armed only by <see cref="StartAttempt"/> (the attempt timeout,
    /// unless this call ends first: its end reaches the attempt through <paramref name="attemptToken"/>). Given back by
    /// <see cref="Return"/> when the attempt ends.
    /// </summary>
    /// <param name="attemptToken">The attempt's token (cancelled when the call ends or the attempt lost its race).</param>
    public CallTimeout ForAttempt(CancellationToken attemptToken)
    {
        var pooled = ReferenceEquals(_time, TimeProvider.System);
        var attempt = pooled ? Pool.Get() : new CallTimeout();
        attempt._time = _time;
        attempt._caller = attemptToken;
        attempt._call = _call;
        attempt._start = _start; // the call's: StartAttempt compares the attempt timeout with what the call has left
        attempt._total = _total;
        attempt._attemptTimeout = _attemptTimeout;
        attempt._armedAttempt = TimeSpan.Zero;
        attempt._source ??= pooled ? new CancellationTokenSource() : new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
        attempt._link = attemptToken.UnsafeRegister(static source => ((CancellationTokenSource)source!).Cancel(), attempt._source);
        return attempt;
    }

    /// <summary>
    /// Arms the attempt timeout for the attempt about to be sent, unless the end of the call comes first (then the timer
    /// stays as it is). A deadline that bounds the attempt is the call's: its expiry ends the call.
    /// </summary>
    public void StartAttempt()
    {
        var attempt = WithinDeadline(_attemptTimeout, _call!, _time, out var byDeadline);
        if (!byDeadline && attempt < _total - _time.GetElapsedTime(_start))
        {
            _armedAttempt = attempt;
            _source!.CancelAfter(attempt);
        }
    }

    /// <summary>
    /// Arms the timer for the rest of the call after an attempt that is to be retried: the total timeout again, on a
    /// new source when the attempt's own timeout cancelled the one it had.
    /// </summary>
    public void ContinueCall()
    {
        if (_armedAttempt == TimeSpan.Zero)
        {
            return;
        }

        _armedAttempt = TimeSpan.Zero;
        var left = _total - _time.GetElapsedTime(_start);
        if (_source!.IsCancellationRequested)
        {
            Unlink(reuse: false);
            Arm(left);
        }
        else
        {
            CancelAfter(_source, left);
        }
    }

    /// <summary>The exception of an attempt that ran out of its own time.</summary>
    public TimeoutRejectedException AttemptTimeoutException(Exception inner) => Rejected(_armedAttempt, inner);

    /// <summary>The exception of a call that ran out of its total time.</summary>
    public TimeoutRejectedException CallTimeoutException(Exception inner) => Rejected(_total, inner);

    /// <summary>Ends the call's timeouts: unlinks the caller's token, and keeps the source for another call when it can.</summary>
    public void Return()
    {
        var pooled = ReferenceEquals(_time, TimeProvider.System);
        Unlink(reuse: pooled);
        _call = null;
        _caller = default;
        if (pooled)
        {
            Pool.Return(this);
        }
    }

    private void Arm(TimeSpan due)
    {
        if (due < TimeSpan.Zero)
        {
            due = TimeSpan.Zero;
        }

        if (_source is null)
        {
            _source = ReferenceEquals(_time, TimeProvider.System) ? new CancellationTokenSource() : new CancellationTokenSource(due, _time);
        }

        if (ReferenceEquals(_time, TimeProvider.System))
        {
            CancelAfter(_source, due);
        }

        // The caller's cancellation cancels the call's source (UnsafeRegister: the callback needs no execution context).
        _link = _caller.UnsafeRegister(static source => ((CancellationTokenSource)source!).Cancel(), _source);
    }

    private void Unlink(bool reuse)
    {
        // Dispose waits for a callback that is running, so that a source reset below is never cancelled late by it.
        _link.Dispose();
        _link = default;
        if (_source is { } source && !(reuse && source.TryReset()))
        {
            source.Dispose();
            _source = null;
        }
    }

    private static void CancelAfter(CancellationTokenSource source, TimeSpan due)
    {
        if (due > TimeSpan.Zero)
        {
            source.CancelAfter(due);
        }
        else
        {
            source.Cancel(); // the call's time is up: now, not at the timer's next tick
        }
    }

    private static TimeoutRejectedException Rejected(TimeSpan timeout, Exception inner) =>
        new($"The operation didn't complete within the allowed timeout of '{timeout}'.", timeout, inner);

    /// <summary>
    /// A timeout of the service, bounded by the time the call has left before its own deadline plus its grace (which
    /// lets Grpc.Net.Client end the call first with <c>DEADLINE_EXCEEDED</c>): the shorter wins, never below a millisecond.
    /// </summary>
    private static TimeSpan WithinDeadline(TimeSpan timeout, MeshRequestContext call, TimeProvider time, out bool byDeadline)
    {
        // Deadline first: Remaining reads the clock even for a call without one.
        if (call.Deadline is not null && call.Remaining(time) is { } remaining && remaining <= timeout)
        {
            byDeadline = true;
            return remaining > MinimumTimeout ? remaining : MinimumTimeout;
        }

        byDeadline = false;
        return timeout;
    }
}
