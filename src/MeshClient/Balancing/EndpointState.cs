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

    public EndpointState(string id)
    {
        Id = id;
    }

    public string Id { get; }

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Gets whether the endpoint takes traffic (set by outlier detection).</summary>
    public EndpointStatus Status => (EndpointStatus)Volatile.Read(ref _status);

    /// <summary>Gets or sets the per-endpoint data of outlier detection (owned by the Resilience feature).</summary>
    public object? HealthData { get; set; }

    public void SetStatus(EndpointStatus status)
    {
        Volatile.Write(ref _status, (int)status);
        if (status == EndpointStatus.Probing)
        {
            Volatile.Write(ref _probeInFlight, 0);
        }
    }

    /// <summary>
    /// Admits an attempt: a healthy endpoint always; a probing one to a single attempt at a time (the probe);
    /// an ejected one only in panic mode, when the snapshot includes it.
    /// </summary>
    public bool TryAdmit(bool panic, out bool isProbe)
    {
        isProbe = false;
        if (panic || Volatile.Read(ref _status) != (int)EndpointStatus.Probing)
        {
            return true;
        }

        isProbe = Interlocked.CompareExchange(ref _probeInFlight, 1, 0) == 0;
        return isProbe;
    }

    /// <summary>Opens the probe gate again when a probe ended without a verdict (cancelled, 429).</summary>
    public void ReleaseProbe() => Volatile.Write(ref _probeInFlight, 0);

    /// <summary>Gets the number of attempts this endpoint has been given.</summary>
    public long Requests => Volatile.Read(ref _requests);

    /// <summary>Gets the peak-EWMA latency estimate in timestamp units, or 0 before the first sample.</summary>
    public double LatencyEstimate => BitConverter.Int64BitsToDouble(Volatile.Read(ref _ewmaBits));

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
