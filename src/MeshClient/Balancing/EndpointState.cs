namespace MeshClient.Balancing;

/// <summary>
/// The live counters of one endpoint, keyed by its stable instance id. They outlive endpoint snapshots: a
/// rediscovered endpoint keeps its latency estimate and its in-flight count.
/// Every member is lock-free; concurrent updates use <see cref="Interlocked"/>.
/// </summary>
internal sealed class EndpointState
{
    private int _inFlight;
    private long _ewmaBits; // double, in TimeProvider timestamp units; 0 = no sample yet
    private long _lastSampleTimestamp;
    private long _requests;
    private int _status;
    private int _probeInFlight;
    private int _consecutiveFailures;
    private int _failureLimit;
    private int _unreachable;
    private int _removed;
    private long _slowStartSince;
    private long _ejectedUntil;

    /// <summary>Creates the state of an endpoint.</summary>
    /// <param name="id">The stable instance id.</param>
    /// <param name="time">
    /// The clock of the last-minute counts (<see cref="LastMinute"/>); without it (tests of the balancer alone) they
    /// are not kept.
    /// </param>
    public EndpointState(string id, TimeProvider? time = null)
    {
        Id = id;
        LastMinute = time is null ? null : new Resilience.RollingCounter(time, TimeSpan.FromMinutes(1));
    }

    public string Id { get; }

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Gets whether the endpoint takes traffic (set by outlier detection).</summary>
    public EndpointStatus Status => (EndpointStatus)Volatile.Read(ref _status);

    /// <summary>
    /// Gets a value indicating whether the endpoint has left its table. Attempts still in flight to it end normally,
    /// but their outcomes must not create anything that would outlive it (an ejection timer).
    /// </summary>
    public bool IsRemoved => Volatile.Read(ref _removed) != 0;

    /// <summary>Marks the endpoint as removed from its table (before its removal is announced to outlier detection).</summary>
    public void MarkRemoved() => Volatile.Write(ref _removed, 1);

    /// <summary>
    /// Gets or sets when the endpoint entered slow start (a <see cref="TimeProvider"/> timestamp), or 0 when it is not
    /// in slow start: it joined a service already in use, or was readmitted after an ejection.
    /// </summary>
    public long SlowStartSince
    {
        get => Volatile.Read(ref _slowStartSince);
        set => Volatile.Write(ref _slowStartSince, value);
    }

    /// <summary>
    /// Gets the attempts that ended in the last minute (total) and those that failed (marked), for the status page:
    /// lock-free and allocation-free, counted when an attempt ends, never on the pick.
    /// </summary>
    public Resilience.RollingCounter? LastMinute { get; }

    /// <summary>
    /// Gets or sets when the current ejection ends (a <see cref="TimeProvider"/> timestamp, written by outlier
    /// detection when it ejects the endpoint); meaningful only while the endpoint is ejected.
    /// </summary>
    public long EjectedUntil
    {
        get => Volatile.Read(ref _ejectedUntil);
        set => Volatile.Write(ref _ejectedUntil, value);
    }

    /// <summary>Gets or sets the per-endpoint data of outlier detection (owned by the Resilience feature).</summary>
    public object? HealthData { get; set; }

    public void SetStatus(EndpointStatus status)
    {
        Volatile.Write(ref _status, (int)status);
        if (status == EndpointStatus.Probing)
        {
            Volatile.Write(ref _probeInFlight, 0);
        }

        if (status != EndpointStatus.Healthy)
        {
            Volatile.Write(ref _consecutiveFailures, 0);
        }
    }

    /// <summary>
    /// Gets or sets whether the endpoint is out because it refused a connection (set with its ejection by outlier
    /// detection): such an endpoint stays out even in panic mode, where sending to it would only cost a retry.
    /// </summary>
    public bool Unreachable
    {
        get => Volatile.Read(ref _unreachable) != 0;
        set => Volatile.Write(ref _unreachable, value ? 1 : 0);
    }

    /// <summary>Gets the failures since the last success (written by outlier detection).</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _consecutiveFailures);

    /// <summary>Counts a failure and returns the new number of consecutive failures.</summary>
    public int OnFailure() => Interlocked.Increment(ref _consecutiveFailures);

    public void OnSuccess()
    {
        if (Volatile.Read(ref _consecutiveFailures) != 0)
        {
            Volatile.Write(ref _consecutiveFailures, 0);
        }
    }

    /// <summary>
    /// Sets the consecutive failures that eject this endpoint (0: no limit). While an endpoint is failing, attempts
    /// are admitted only as long as failures plus attempts in flight stay under it, so concurrent callers cannot
    /// push more than the limit into a failing endpoint before it is ejected.
    /// </summary>
    public void SetFailureLimit(int limit)
    {
        if (Volatile.Read(ref _failureLimit) != limit)
        {
            Volatile.Write(ref _failureLimit, limit);
        }
    }

    /// <summary>
    /// Admits an attempt and counts it in flight: a healthy endpoint always, a failing one within its failure
    /// limit, a probing one to a single attempt at a time (the probe), an ejected one only in panic mode (when the
    /// snapshot includes it). Returns <see langword="false"/> without counting anything when refused.
    /// </summary>
    public bool TryAdmit(bool panic, out bool isProbe)
    {
        isProbe = false;

        // Panic ignores health, but not a refused connection: an unreachable endpoint is probed one attempt at a time.
        if (!panic || Volatile.Read(ref _unreachable) != 0)
        {
            var status = Volatile.Read(ref _status);
            if (status == (int)EndpointStatus.Ejected && !panic)
            {
                // Picked from a snapshot published before its ejection (which reset its failure count, so the limit
                // below would let it through): it takes nothing more.
                return false;
            }

            if (status == (int)EndpointStatus.Probing)
            {
                if (Interlocked.CompareExchange(ref _probeInFlight, 1, 0) != 0)
                {
                    return false;
                }

                isProbe = true;
            }
            else
            {
                var failures = Volatile.Read(ref _consecutiveFailures);
                var limit = Volatile.Read(ref _failureLimit);
                if (failures > 0 && limit > 0)
                {
                    while (true)
                    {
                        var inFlight = Volatile.Read(ref _inFlight);
                        if (failures + inFlight >= limit)
                        {
                            return false;
                        }

                        if (Interlocked.CompareExchange(ref _inFlight, inFlight + 1, inFlight) == inFlight)
                        {
                            Interlocked.Increment(ref _requests);
                            return true;
                        }
                    }
                }
            }
        }

        OnAttemptStarted();
        return true;
    }

    /// <summary>Opens the probe gate again when a probe ended without a verdict (cancelled, 429).</summary>
    public void ReleaseProbe() => Volatile.Write(ref _probeInFlight, 0);

    /// <summary>Gets the number of attempts this endpoint has been given.</summary>
    public long Requests => Volatile.Read(ref _requests);

    /// <summary>Gets the peak-EWMA latency estimate in timestamp units, or 0 before the first sample.</summary>
    public double LatencyEstimate => BitConverter.Int64BitsToDouble(Volatile.Read(ref _ewmaBits));

    /// <summary>
    /// Gets the latency estimate as of <paramref name="nowTimestamp"/>: decayed towards zero by the time since the
    /// last sample (skipped while that is under 1% of the decay time, as it is under steady traffic).
    /// </summary>
    public double LatencyEstimateAt(long nowTimestamp, double decay)
    {
        var estimate = LatencyEstimate;
        var elapsed = nowTimestamp - Volatile.Read(ref _lastSampleTimestamp);
        return estimate > 0 && elapsed > decay * 0.01 ? estimate * Math.Exp(-elapsed / decay) : estimate;
    }

    /// <summary>
    /// Gives an endpoint that has never been measured a starting estimate (the service's typical latency), so that
    /// a new endpoint takes its share at once instead of competing with the much higher default RTT.
    /// </summary>
    public void SeedLatency(long nowTimestamp, double estimate)
    {
        if (estimate > 0 && Volatile.Read(ref _ewmaBits) == 0)
        {
            Volatile.Write(ref _lastSampleTimestamp, nowTimestamp);
            Interlocked.CompareExchange(ref _ewmaBits, BitConverter.DoubleToInt64Bits(estimate), 0);
        }
    }

    public void OnAttemptStarted()
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _requests);
    }

    public void OnAttemptEnded() => Interlocked.Decrement(ref _inFlight);

    /// <summary>
    /// Folds a latency sample into the peak-EWMA estimate (Finagle, Linkerd): a sample above the estimate replaces
    /// it; a sample below it decays the estimate with weight e^(-Δt/decay).
    /// </summary>
    public void RecordLatency(long nowTimestamp, double rtt, double decay)
    {
        var last = Interlocked.Exchange(ref _lastSampleTimestamp, nowTimestamp);
        var elapsed = Math.Max(0, nowTimestamp - last);
        var keep = Math.Exp(-elapsed / decay);
        while (true)
        {
            var currentBits = Volatile.Read(ref _ewmaBits);
            var current = BitConverter.Int64BitsToDouble(currentBits);
            var next = current <= 0 || rtt > current ? rtt : (current * keep) + (rtt * (1 - keep));
            if (Interlocked.CompareExchange(ref _ewmaBits, BitConverter.DoubleToInt64Bits(next), currentBits) == currentBits)
            {
                return;
            }
        }
    }
}
