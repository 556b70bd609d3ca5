namespace MeshClient.Model;

/// <summary>
/// The live counters of one endpoint, keyed by its stable instance id. They outlive endpoint snapshots: a
/// rediscovered endpoint keeps its latency estimate and its in-flight count.
/// Every member is lock-free; concurrent updates use <see cref="Interlocked"/>.
/// </summary>
internal sealed class EndpointState
{
    private int _inFlight;
    private int _openStreams;
    private long _ewmaBits; // double, in TimeProvider timestamp units; 0 = no sample yet
    private long _lastSampleTimestamp;
    private int _answers;
    private int _spikesInARow;
    private long _requests;
    private int _status;
    private int _probeInFlight;
    private int _consecutiveFailures;
    private int _failureLimit;
    private int _unreachable;
    private int _removed;
    private long _slowStartSince;
    private long _ejectedUntil;
    private long _zoneLatencySum;
    private int _zoneSamples;
    private EndpointLoadReport? _loadReport;

    /// <summary>The least weight of a sample below the estimate: the estimate follows an endpoint's last few dozen answers.</summary>
    internal const double MinSampleWeight = 1.0 / 16;

    /// <summary>The answers of an endpoint that are not latency samples (<see cref="IsWarmUpAnswer"/>).</summary>
    internal const int WarmUpAnswers = 3;

    /// <summary>How much a single answer above the estimate can raise it (a second one in a row replaces it).</summary>
    internal const double MaxSpikeGrowth = 2.0;

    /// <summary>Creates the state of an endpoint.</summary>
    /// <param name="id">The stable instance id.</param>
    /// <param name="time">
    /// The clock of the last-minute counts (<see cref="LastMinute"/>); without it (tests of the balancer alone) they
    /// are not kept.
    /// </param>
    public EndpointState(string id, TimeProvider? time = null)
    {
        Id = id;
        LastMinute = time is null ? null : new MeshClient.Model.RollingCounter(time, TimeSpan.FromMinutes(1));
    }

    public string Id { get; }

    /// <summary>
    /// Gets the attempts waiting for their response headers: the load the policies weigh (and the failure limit counts).
    /// </summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>
    /// Gets the gRPC calls whose response headers arrived and whose response body (messages, then trailers) is still
    /// open: in flight as far as the endpoint's lease goes, but no longer load for the pick (<see cref="OnAnswered"/>).
    /// </summary>
    public int OpenStreams => Volatile.Read(ref _openStreams);

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
    public MeshClient.Model.RollingCounter? LastMinute { get; }

    /// <summary>
    /// Gets or sets when the current ejection ends (a <see cref="TimeProvider"/> timestamp, written by outlier
    /// detection when it ejects the endpoint); meaningful only while the endpoint is ejected.
    /// </summary>
    public long EjectedUntil
    {
        get => Volatile.Read(ref _ejectedUntil);
        set => Volatile.Write(ref _ejectedUntil, value);
    }

    /// <summary>
    /// Gets the load the endpoint last reported of itself (ORCA, <see cref="OrcaLoadReport"/>), or <see langword="null"/>
    /// before its first report was read.
    /// </summary>
    public EndpointLoadReport? LoadReport => Volatile.Read(ref _loadReport);

    /// <summary>Gets <see cref="LoadReport"/>, making it at the endpoint's first report (once per endpoint).</summary>
    public EndpointLoadReport GetOrCreateLoadReport() =>
        Volatile.Read(ref _loadReport) ?? Interlocked.CompareExchange(ref _loadReport, new EndpointLoadReport(), null) ?? _loadReport!;

    /// <summary>Gets or sets what outlier detection keeps for the endpoint (written by it, under a lock of this state).</summary>
    public EndpointHealth? Health { get; set; }

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
    /// limit, a probing one to a single attempt at a time (the probe; in panic mode its other attempts are ordinary
    /// ones), an ejected one only in panic mode (when the snapshot includes it). Returns <see langword="false"/> without counting anything when refused.
    /// </summary>
    /// <param name="panic">Whether the snapshot picked from is in panic mode.</param>
    /// <param name="unreachableAdmitted">Whether that snapshot takes unreachable endpoints (every endpoint was).</param>
    /// <param name="isProbe">Whether the attempt is the endpoint's probe.</param>
    public bool TryAdmit(bool panic, bool unreachableAdmitted, out bool isProbe)
    {
        isProbe = false;

        // Panic ignores health, but not a refused connection: an unreachable endpoint is probed one attempt at a time.
        if (!panic || Volatile.Read(ref _unreachable) != 0)
        {
            var status = Volatile.Read(ref _status);
            if (status == (int)EndpointStatus.Ejected && (!panic || !unreachableAdmitted))
            {
                // Picked from a snapshot published before its ejection (which reset its failure count, so the limit
                // below would let it through; the new snapshot is being built off the request thread): it takes
                // nothing more. Nor does an unreachable one in panic, unless every endpoint was unreachable.
                return false;
            }

            if (status == (int)EndpointStatus.Ejected)
            {
                // Every endpoint refused connections and this one is already out: the failure limit guards an ejection
                // that has happened, and attempts go on to find the first endpoint back.
                OnAttemptStarted();
                return true;
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
                return TryAdmitWithinFailureLimit();
            }
        }
        else if (Volatile.Read(ref _status) == (int)EndpointStatus.Probing && Interlocked.CompareExchange(ref _probeInFlight, 1, 0) == 0)
        {
            // Panic sends attempts to every endpoint, but one whose ejection ended still takes its probe first: only a
            // probe's verdict readmits it (or ejects it again), and panic ends once enough are back.
            isProbe = true;
        }

        OnAttemptStarted();
        return true;
    }

    /// <summary>
    /// Admits an ordinary attempt (never a probe), for the balancer's fallbacks: like <see cref="TryAdmit"/> within the
    /// failure limit and an ejected endpoint only in panic mode (an unreachable one only when every endpoint was), and a probing one as an ordinary attempt (whose
    /// outcome neither readmits nor ejects it). Returns <see langword="false"/> without counting anything when refused.
    /// </summary>
    public bool TryAdmitOrdinary(bool panic, bool unreachableAdmitted)
    {
        if (panic && Volatile.Read(ref _unreachable) == 0)
        {
            OnAttemptStarted();
            return true;
        }

        if (Volatile.Read(ref _status) == (int)EndpointStatus.Ejected)
        {
            // Only when every endpoint refused connections, past the failure limit (see TryAdmit).
            if (panic && unreachableAdmitted)
            {
                OnAttemptStarted();
                return true;
            }

            return false;
        }

        return TryAdmitWithinFailureLimit();
    }

    /// <summary>Whether an ordinary attempt would be admitted now (<see cref="TryAdmitOrdinary"/>), counting nothing.</summary>
    public bool CanAdmitOrdinary(bool panic, bool unreachableAdmitted)
    {
        if (panic && Volatile.Read(ref _unreachable) == 0)
        {
            return true;
        }

        var failures = Volatile.Read(ref _consecutiveFailures);
        var limit = Volatile.Read(ref _failureLimit);
        if (Volatile.Read(ref _status) == (int)EndpointStatus.Ejected)
        {
            return panic && unreachableAdmitted;
        }

        return failures == 0 || limit == 0 || failures + Volatile.Read(ref _inFlight) < limit;
    }

    /// <summary>Counts an attempt in flight unless the endpoint is failing and its failures plus attempts in flight reached the limit.</summary>
    private bool TryAdmitWithinFailureLimit()
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
    /// Returns <see langword="true"/> for the first <see cref="WarmUpAnswers"/> answers of an endpoint: they carried the
    /// set-up of its connections (and, at start-up, the first runs of the code on both sides), which says nothing about
    /// the latency of its requests. They are not folded into the estimate, so the endpoint stays unmeasured, and so
    /// free to try while idle, until its next answer (measured: the second answer of a fresh loopback backend was still
    /// several times its usual latency, enough to starve it).
    /// </summary>
    public bool IsWarmUpAnswer() => Volatile.Read(ref _answers) < WarmUpAnswers && Interlocked.Increment(ref _answers) <= WarmUpAnswers;

    /// <summary>
    /// Lowers the estimate of an endpoint that a pick passed over for its latency by <paramref name="fraction"/>. An
    /// endpoint passed over gets no sample, so without this only the clock would lower its estimate (tens of seconds
    /// from one slow answer), however many requests went elsewhere meanwhile: a healthy endpoint hit by one spike
    /// (a pause, a new connection) would be starved for that long. With it, the estimate falls with the traffic it
    /// misses, and one new answer says whether the endpoint is still slow.
    /// </summary>
    public void OnPassedOver(double fraction)
    {
        var bits = Volatile.Read(ref _ewmaBits);
        var current = BitConverter.Int64BitsToDouble(bits);
        if (current > 0)
        {
            // One attempt: a lost race means another pick or a sample just changed it, which is as good.
            Interlocked.CompareExchange(ref _ewmaBits, BitConverter.DoubleToInt64Bits(current * (1 - fraction)), bits);
        }
    }

    /// <summary>
    /// Adds a latency sample (timestamp units) to those zone routing collects between two of its updates: two
    /// interlocked additions, recorded only for services with zone routing on.
    /// </summary>
    public void AddZoneSample(double rtt)
    {
        Interlocked.Add(ref _zoneLatencySum, (long)rtt);
        Interlocked.Increment(ref _zoneSamples);
    }

    /// <summary>Takes the samples added since the last call: returns their number and their sum (timestamp units).</summary>
    public int TakeZoneSamples(out long sum)
    {
        if (Volatile.Read(ref _zoneSamples) == 0)
        {
            sum = 0;
            return 0;
        }

        // Not atomic as a pair: a sample being added may land in the next window's count; zone routing averages many.
        var count = Interlocked.Exchange(ref _zoneSamples, 0);
        sum = Interlocked.Exchange(ref _zoneLatencySum, 0);
        return count;
    }

    public void OnAttemptStarted()
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _requests);
    }

    public void OnAttemptEnded() => Interlocked.Decrement(ref _inFlight);

    /// <summary>
    /// Moves an attempt whose response headers arrived from <see cref="InFlight"/> to <see cref="OpenStreams"/>: a
    /// server-streaming call open for minutes would otherwise weigh on every pick as a request waiting all that time,
    /// and starve its endpoint of the unary calls it can serve meanwhile (Linkerd's balancer likewise counts a request
    /// as pending only until the first data of its response). <see cref="OnStreamEnded"/> ends it.
    /// </summary>
    public void OnAnswered()
    {
        Interlocked.Increment(ref _openStreams);
        Interlocked.Decrement(ref _inFlight);
    }

    /// <summary>Ends a call moved to <see cref="OpenStreams"/> by <see cref="OnAnswered"/>: its response body ended.</summary>
    public void OnStreamEnded() => Interlocked.Decrement(ref _openStreams);

    /// <summary>
    /// Folds a latency sample into the peak-EWMA estimate (Finagle, Linkerd). A sample above the estimate is a peak
    /// and replaces it — unless it is more than <see cref="MaxSpikeGrowth"/> times the estimate and neither a failure
    /// nor the second such answer in a row: a single slow answer among fast ones (a pause, a new connection) only
    /// doubles the estimate, so one spike cannot take a healthy endpoint out of the band of its peers
    /// (the peak-EWMA policy's latency band), while a slow endpoint is out after two answers.
    /// A sample below the estimate decays it with weight e^(-Δt/decay), and by at least <see cref="MinSampleWeight"/>:
    /// under dense traffic Δt is tiny, and the time weight alone would let one slow answer outweigh the thousands
    /// that follow it for the whole decay time (10 s).
    /// </summary>
    public void RecordLatency(long nowTimestamp, double rtt, double decay, bool failure = false)
    {
        var last = Interlocked.Exchange(ref _lastSampleTimestamp, nowTimestamp);
        var elapsed = Math.Max(0, nowTimestamp - last);
        var keep = Math.Min(Math.Exp(-elapsed / decay), 1 - MinSampleWeight);
        var estimate = BitConverter.Int64BitsToDouble(Volatile.Read(ref _ewmaBits));
        var confirmed = failure;
        if (estimate > 0 && rtt > estimate * MaxSpikeGrowth)
        {
            confirmed |= Interlocked.Increment(ref _spikesInARow) >= 2;
        }
        else if (Volatile.Read(ref _spikesInARow) != 0)
        {
            Volatile.Write(ref _spikesInARow, 0);
        }

        while (true)
        {
            var currentBits = Volatile.Read(ref _ewmaBits);
            var current = BitConverter.Int64BitsToDouble(currentBits);
            var next = current <= 0 ? rtt
                : rtt > current ? (confirmed ? rtt : Math.Min(rtt, current * MaxSpikeGrowth))
                : (current * keep) + (rtt * (1 - keep));
            if (Interlocked.CompareExchange(ref _ewmaBits, BitConverter.DoubleToInt64Bits(next), currentBits) == currentBits)
            {
                return;
            }
        }
    }
}
