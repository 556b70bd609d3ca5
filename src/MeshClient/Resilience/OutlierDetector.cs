using MeshClient.Balancing;
using MeshClient.Model;
using MeshClient.Telemetry;
using Microsoft.Extensions.Logging;

namespace MeshClient.Resilience;

/// <summary>
/// Passive outlier detection per endpoint, with Envoy's semantics: consecutive failures; failure percentage over
/// a rolling window with a minimum volume; ejection for base × times ejected, capped; at most a percentage of a
/// service ejected (one always may be); a single probe when the ejection ends (Linkerd's probation); panic mode
/// in the snapshot.
/// <para>
/// Written as a state machine here rather than on Polly's circuit breaker because the rules are service-wide and
/// balancer-driven, which a per-pipeline breaker cannot express: Polly counts no consecutive failures (only a
/// ratio over a window), cannot be vetoed by a max-ejection percentage, rejects every request in panic mode
/// where traffic must still flow, and half-opens lazily on whatever request arrives, where the balancer must
/// choose the single probe. The retries and timeouts are the mesh's own too (<c>Handlers/MeshRetryHandler</c>, <see cref="CallTimeout"/>).
/// </para>
/// </summary>
internal sealed partial class OutlierDetector(
    ResilienceRegistry resilience,
    TimeProvider time,
    MeshInstrumentation telemetry,
    ILogger<OutlierDetector> logger) : IEndpointHealthObserver
{
    private int _ejectionTimers;

    /// <summary>Gets the number of ejection timers created and not yet disposed (diagnostics and tests).</summary>
    internal int EjectionTimers => Volatile.Read(ref _ejectionTimers);

    public void OnOutcome(ServiceTable table, EndpointEntry endpoint, AttemptOutcome outcome, bool wasProbe)
    {
        var state = endpoint.State;
        if (outcome is AttemptOutcome.Cancelled or AttemptOutcome.Overloaded or AttemptOutcome.Local || state.IsRemoved)
        {
            if (wasProbe)
            {
                state.ReleaseProbe(); // no verdict (or the endpoint is gone): the next request probes again
            }

            return;
        }

        var settings = resilience.Get(table.ServiceName).Settings;
        var health = GetHealth(state, settings);
        state.SetFailureLimit(settings.ConsecutiveFailures);
        if (outcome == AttemptOutcome.Success)
        {
            state.OnSuccess();

            health.Window.Add(marked: false);
            if (wasProbe)
            {
                Readmit(table, endpoint, health);
            }

            return;
        }

        var consecutive = state.OnFailure();
        health.Window.Add(marked: true);
        var unreachable = outcome == AttemptOutcome.Unreachable;
        if (wasProbe)
        {
            Eject(table, endpoint, health, settings, "probe_failed", fromProbe: true, unreachable);
            return;
        }

        if (state.Status != EndpointStatus.Healthy)
        {
            if (unreachable && state.Status == EndpointStatus.Ejected && !state.Unreachable)
            {
                MarkUnreachable(table, state);
            }

            return;
        }

        if (unreachable)
        {
            Eject(table, endpoint, health, settings, "unreachable", fromProbe: false, unreachable: true);
        }
        else if (settings.ConsecutiveFailures > 0 && consecutive >= settings.ConsecutiveFailures)
        {
            Eject(table, endpoint, health, settings, "consecutive_failures", fromProbe: false, unreachable: false);
        }
        else if (settings.FailurePercentageThreshold > 0)
        {
            var (total, failures) = health.Window.Sum();
            if (total >= settings.FailurePercentageMinimumRequests && failures * 100 >= total * settings.FailurePercentageThreshold)
            {
                Eject(table, endpoint, health, settings, "failure_percentage", fromProbe: false, unreachable: false);
            }
        }
    }

    /// <summary>
    /// Keeps an endpoint that answered <c>Retry-After</c> out of the picks for that long, capped at
    /// <c>MaxEjectionTime</c>, then probes it once as after any ejection. It is the endpoint's own word, not a guess,
    /// so like a refused connection it is not limited by the max-ejection percentage (panic mode still balances over
    /// every endpoint when too few are left) and does not lengthen the endpoint's next ejections. The call itself
    /// never waits that long: its next attempt goes to another endpoint at once, or, when no other can take it, to this
    /// one again after at most <c>RetryMaxDelay</c>.
    /// </summary>
    public void OnRetryAfter(ServiceTable table, EndpointEntry endpoint, TimeSpan retryAfter)
    {
        var state = endpoint.State;
        if (state.IsRemoved || state.Status != EndpointStatus.Healthy)
        {
            return; // a probe that answered so was ejected again by its outcome; an ejected endpoint stays out
        }

        var settings = resilience.Get(table.ServiceName).Settings;
        var duration = retryAfter < settings.MaxEjectionTime ? retryAfter : settings.MaxEjectionTime;
        Eject(table, endpoint, GetHealth(state, settings), settings, "retry_after", fromProbe: false, unreachable: false, duration);
    }

    public void OnRemoved(EndpointState state)
    {
        // Marked first: an ejection decided after this point sees the mark under the same lock as the timer, so a
        // failure of an attempt that was in flight when its endpoint left never starts a timer nobody disposes.
        state.MarkRemoved();
        if (state.Health is { } health)
        {
            lock (health)
            {
                DisposeTimer(health);
            }
        }
    }

    /// <summary>The service's table was evicted: its pipelines and retry budget go too (they would otherwise stay until 4,096 services).</summary>
    public void OnServiceRemoved(string serviceName) => resilience.Remove(serviceName);

    /// <summary>Disposes the ejection timer of an endpoint, if any; call under the lock of <paramref name="health"/>.</summary>
    private void DisposeTimer(EndpointHealth health)
    {
        if (health.Timer is { } timer)
        {
            health.Timer = null;
            timer.Dispose();
            Interlocked.Decrement(ref _ejectionTimers);
        }
    }

    private EndpointHealth GetHealth(EndpointState state, ResilienceSettings settings)
    {
        if (state.Health is { } health && health.Window.Matches(settings.FailurePercentageWindow))
        {
            return health;
        }

        lock (state)
        {
            if (state.Health is { } existing && existing.Window.Matches(settings.FailurePercentageWindow))
            {
                return existing;
            }

            var created = new EndpointHealth(new RollingCounter(time, settings.FailurePercentageWindow));
            if (state.Health is { } old)
            {
                created.TimesEjected = old.TimesEjected;
                created.Timer = old.Timer;
            }

            state.Health = created;
            return created;
        }
    }

    /// <summary>
    /// Ejects an endpoint. An outlier (failing answers) is ejected only within the max-ejection percentage, which
    /// does not count unreachable endpoints; an unreachable one (connection refused) is whatever the percentage, for a
    /// short time that grows with each ejection in a row (<see cref="ResilienceSettings.UnreachableEjectionTime"/>).
    /// A max-ejection percentage of 0 turns ejection off, unreachable endpoints included.
    /// </summary>
    private void Eject(ServiceTable table, EndpointEntry endpoint, EndpointHealth health, ResilienceSettings settings, string reason, bool fromProbe, bool unreachable, TimeSpan? asked = null)
    {
        TimeSpan duration;
        int times;
        lock (table.HealthLock)
        {
            var state = endpoint.State;
            if (fromProbe ? state.Status != EndpointStatus.Probing : state.Status != EndpointStatus.Healthy)
            {
                return; // another thread already decided
            }

            if (settings.MaxEjectionPercent == 0 && !fromProbe)
            {
                // Ejection is off, for refused connections too (each one is then requeued elsewhere at once). Only an
                // outlier's veto is logged (every ConsecutiveFailures failures): a refusal would log on every call.
                if (!unreachable)
                {
                    Log.EjectionSkipped(logger, table.ServiceName, endpoint.Id, reason, 0, table.Snapshot?.All.Length ?? 0);
                }

                state.OnSuccess(); // forget the streak: the failure limit must not keep the endpoint out instead
                health.Window.Reset();
                return;
            }

            if (!fromProbe && !unreachable && asked is null)
            {
                var snapshot = table.Snapshot;
                var total = snapshot?.All.Length ?? 0;
                var ejected = 0;
                foreach (var entry in snapshot?.All ?? [])
                {
                    ejected += entry.State.Status != EndpointStatus.Healthy && !entry.State.Unreachable ? 1 : 0;
                }

                var allowed = Math.Max(1, total * settings.MaxEjectionPercent / 100);
                if (ejected >= allowed)
                {
                    Log.EjectionSkipped(logger, table.ServiceName, endpoint.Id, reason, ejected, total);
                    state.OnSuccess(); // forget the streak: the next streak is judged afresh
                    health.Window.Reset();
                    return;
                }
            }

            var now = time.GetTimestamp();
            if (health.LastReadmitted != 0 && time.GetElapsedTime(health.LastReadmitted, now) > settings.MaxEjectionTime)
            {
                health.TimesEjected = 0; // healthy for a long spell: start the backoff over
            }

            times = asked is null ? ++health.TimesEjected : health.TimesEjected;
            duration = asked ?? (unreachable
                ? TimeSpan.FromTicks(Math.Min(settings.UnreachableEjectionTime.Ticks * times, settings.BaseEjectionTime.Ticks))
                : TimeSpan.FromTicks(Math.Min(settings.BaseEjectionTime.Ticks * times, settings.MaxEjectionTime.Ticks)));
            state.Unreachable = unreachable;
            state.EjectedUntil = now + (long)(duration.TotalSeconds * time.TimestampFrequency);
            health.Window.Reset();
            lock (health)
            {
                if (state.IsRemoved)
                {
                    return; // the endpoint has left its table: nothing to eject
                }

                DisposeTimer(health);
                health.Timer = time.CreateTimer(static s => ((EjectionTimerState)s!).Expire(), new EjectionTimerState(this, table, endpoint), duration, Timeout.InfiniteTimeSpan);
                Interlocked.Increment(ref _ejectionTimers);
            }

            table.SetStatus(state, EndpointStatus.Ejected, rebuildLater: true);
        }

        telemetry.Ejections.Add(1, new KeyValuePair<string, object?>(MeshTags.Service, table.ServiceName), new KeyValuePair<string, object?>(MeshTags.EjectionReason, reason));
        MeshInstrumentation.AddEvent("mesh.endpoint.ejected", MeshTags.EndpointId, endpoint.Id);
        Log.Ejected(logger, table.ServiceName, endpoint.Id, reason, duration, times);
    }

    /// <summary>
    /// An endpoint ejected for failing answers that then refuses a connection (panic mode still sends to it) is out
    /// because it is unreachable: panic mode stops sending it every attempt (it admits ejected endpoints, not
    /// unreachable ones), and when every endpoint is unreachable the attempts go on to find the first one back. Found
    /// by the chaos soak (seed 733845904): an endpoint whose aborted connections ejected it, then killed, took all six
    /// requeues of a GET while three restarted endpoints waited out their ejections.
    /// </summary>
    private static void MarkUnreachable(ServiceTable table, EndpointState state)
    {
        lock (table.HealthLock)
        {
            if (state.Status != EndpointStatus.Ejected || state.Unreachable)
            {
                return;
            }

            state.Unreachable = true;
            table.SetStatus(state, EndpointStatus.Ejected, rebuildLater: true); // a new snapshot: its panic and unreachable admission
        }
    }

    private void OnEjectionExpired(ServiceTable table, EndpointEntry endpoint)
    {
        lock (table.HealthLock)
        {
            if (endpoint.State.Status != EndpointStatus.Ejected || endpoint.State.IsRemoved)
            {
                return;
            }

            table.SetStatus(endpoint.State, EndpointStatus.Probing);
        }

        Log.Probing(logger, table.ServiceName, endpoint.Id);
    }

    private void Readmit(ServiceTable table, EndpointEntry endpoint, EndpointHealth health)
    {
        lock (table.HealthLock)
        {
            if (endpoint.State.Status != EndpointStatus.Probing)
            {
                return;
            }

            health.LastReadmitted = time.GetTimestamp();
            endpoint.State.Unreachable = false;
            table.SetStatus(endpoint.State, EndpointStatus.Healthy, rebuildLater: true);
        }

        Log.Readmitted(logger, table.ServiceName, endpoint.Id);
    }

    private sealed class EjectionTimerState(OutlierDetector detector, ServiceTable table, EndpointEntry endpoint)
    {
        public void Expire() => detector.OnEjectionExpired(table, endpoint);
    }

    private static partial class Log
    {
        [LoggerMessage(200, LogLevel.Warning, "Service {Service}: endpoint {Endpoint} ejected ({Reason}) for {Duration} (ejection #{Times}).", EventName = "EndpointEjected")]
        public static partial void Ejected(ILogger logger, string service, string endpoint, string reason, TimeSpan duration, int times);

        [LoggerMessage(201, LogLevel.Information, "Service {Service}: endpoint {Endpoint} ejection ended; sending it one probe request.", EventName = "EndpointProbing")]
        public static partial void Probing(ILogger logger, string service, string endpoint);

        [LoggerMessage(202, LogLevel.Information, "Service {Service}: endpoint {Endpoint} readmitted after a successful probe.", EventName = "EndpointReadmitted")]
        public static partial void Readmitted(ILogger logger, string service, string endpoint);

        [LoggerMessage(203, LogLevel.Warning, "Service {Service}: endpoint {Endpoint} is an outlier ({Reason}) but was not ejected: {Ejected} of {Total} endpoint(s) already are (max ejection percent).", EventName = "EjectionSkipped")]
        public static partial void EjectionSkipped(ILogger logger, string service, string endpoint, string reason, int ejected, int total);
    }
}
