using MeshClient.Model;

namespace MeshClient.Balancing;

/// <summary>
/// The live half of one service's zone routing, kept across snapshots: how long its calls take in the caller's zone
/// and in the others, and the share of calls that leave the zone (the spill). The pick reads <see cref="Spill"/> and
/// <see cref="TakeProbe"/>; every <see cref="UpdateInterval"/> one pick (the one that wins a compare-and-swap on the
/// next update time) folds the latency samples the endpoints collected since into the two zones' means and moves the
/// spill. No lock, no allocation, and no timer: an idle service costs nothing.
/// <para>
/// The rule. The zone's mean answer time over the other zones' is the ratio r (each mean over the samples of the
/// service's own calls, as the policy records them: a failure counts as the failure penalty). The spill target is
/// <see cref="ZoneRoutingSettings.SpillFor"/>(r): 0 up to the start ratio, 1 at the full ratio, in proportion between.
/// The spill rises towards a higher target with a time constant of <see cref="RiseTime"/> and falls towards a lower
/// one with <see cref="FallTime"/>, and it falls only when even r / <see cref="Hysteresis"/> asks for less: a dead
/// band, so that the load a spill takes off the zone (which lowers r) does not send the calls straight back. A spilled
/// call is not sent to another zone: it ignores zones, and the service's policy picks among all endpoints — so a full
/// spill is exactly the service without zone routing, never worse.
/// </para>
/// <para>
/// The other zones are measured by the calls that go there. While nothing spills, one call in a while goes there
/// (a probe: at most one per <see cref="ProbeInterval"/> and per <see cref="ProbeEvery"/> samples, so under 1% of the
/// calls; every <see cref="UpdateInterval"/> while those zones have no mean yet), so that a slow zone can be compared
/// with something. Why the means and not the policy's peak-EWMA estimates: a power-of-two-choices policy lowers the
/// estimate of every endpoint it passes over (<see cref="PeakEwmaPolicy"/>) — exactly the slow zone's endpoints once
/// calls spill — and the estimates keep peaks, which dense local traffic has far more of than a sparse probe stream.
/// The load term of the policy's cost is left out too: zone routing itself puts the load in the zone, and a zone that
/// is busy for real answers more slowly.
/// </para>
/// </summary>
internal sealed class ZoneBalance
{
    /// <summary>How often the means and the spill are updated.</summary>
    internal static readonly TimeSpan UpdateInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>The time constant of a rising spill.</summary>
    internal static readonly TimeSpan RiseTime = TimeSpan.FromMilliseconds(500);

    /// <summary>The time constant of a falling spill.</summary>
    internal static readonly TimeSpan FallTime = TimeSpan.FromSeconds(2);

    /// <summary>The spill falls only when the ratio divided by this still asks for less (a dead band of 20%).</summary>
    internal const double Hysteresis = 0.8;

    /// <summary>The time constant of a zone's mean under dense traffic: a pause of a few milliseconds among thousands of calls a second moves it little.</summary>
    internal static readonly TimeSpan MeanTime = TimeSpan.FromSeconds(1);

    /// <summary>The samples a zone's mean holds at least: a zone measured by sparse calls (probes) averages its last few dozen.</summary>
    internal const double MeanSamples = 32;

    /// <summary>The samples a zone's mean needs before the ratio counts.</summary>
    internal const double MinSamples = 4;

    /// <summary>While nothing spills, the other zones get a probe at most this often …</summary>
    internal static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(1);

    /// <summary>… and at most once per this many samples.</summary>
    internal const int ProbeEvery = 100;

    /// <summary>Until the other zones have a mean, a probe goes every update, at most once per this many samples.</summary>
    internal const int FirstProbeEvery = 10;

    /// <summary>The time constant of the local share shown by the status.</summary>
    internal static readonly TimeSpan ShareTime = TimeSpan.FromSeconds(2);

    private readonly double _frequency;
    private readonly long _interval;
    private long _nextUpdate;
    private long _spillBits;
    private int _probe;
    private int _updating;

    // Written by the one updater at a time (the compare-and-swap on _nextUpdate), read by the status.
    private long _lastUpdate;
    private long _lastLocalSample;
    private long _lastRemoteSample;
    private long _samplesSinceProbe;
    private double _localSum;
    private double _localWeight;
    private double _remoteSum;
    private double _remoteWeight;
    private double _localCalls;
    private double _allCalls;
    private double _ratio = double.NaN;

    /// <summary>Creates the balance of a service whose caller is in <paramref name="zone"/>.</summary>
    /// <param name="zone">The caller's zone (a new zone starts a new balance).</param>
    /// <param name="timestampFrequency">The frequency of the timestamps given (<see cref="TimeProvider.TimestampFrequency"/>).</param>
    public ZoneBalance(string zone, long timestampFrequency)
    {
        Zone = zone;
        _frequency = timestampFrequency;
        _interval = (long)(UpdateInterval.TotalSeconds * timestampFrequency);
    }

    public string Zone { get; }

    /// <summary>Gets the share of calls (0–1) that ignore zones (the policy picks among all endpoints).</summary>
    public double Spill => BitConverter.Int64BitsToDouble(Volatile.Read(ref _spillBits));

    /// <summary>Takes the probe of the other zones, if one is due (one pick gets it).</summary>
    public bool TakeProbe() => Volatile.Read(ref _probe) != 0 && Interlocked.Exchange(ref _probe, 0) != 0;

    /// <summary>Updates the means and the spill if <see cref="UpdateInterval"/> has passed; one caller at a time does.</summary>
    /// <param name="now">The current timestamp.</param>
    /// <param name="view">The zones of the snapshot picked from (its endpoints hold the samples).</param>
    public void MaybeUpdate(long now, ZoneView view)
    {
        var next = Volatile.Read(ref _nextUpdate);
        if (now < next || Interlocked.CompareExchange(ref _nextUpdate, now + _interval, next) != next)
        {
            return;
        }

        // One updater at a time even if an update outlasted the interval (a scan of very many endpoints on a busy machine).
        if (Interlocked.Exchange(ref _updating, 1) != 0)
        {
            return;
        }

        try
        {
            Update(now, view);
        }
        finally
        {
            Volatile.Write(ref _updating, 0);
        }
    }

    /// <summary>Folds the samples collected since the last update into the zones' means and moves the spill (one caller at a time).</summary>
    internal void Update(long now, ZoneView view)
    {
        var dt = _lastUpdate == 0 ? UpdateInterval.TotalSeconds : Math.Clamp((now - _lastUpdate) / _frequency, 0, 60);
        _lastUpdate = now;

        double localSum = 0, remoteSum = 0;
        long localCount = 0, remoteCount = 0;
        var all = view.All;
        var local = view.IsLocal;
        for (var i = 0; i < all.Length; i++)
        {
            var count = all[i].State.TakeZoneSamples(out var sum);
            if (count == 0)
            {
                continue;
            }

            if (local[i])
            {
                localSum += sum;
                localCount += count;
            }
            else
            {
                remoteSum += sum;
                remoteCount += count;
            }
        }

        Fold(ref _localSum, ref _localWeight, ref _lastLocalSample, localSum, localCount, now);
        Fold(ref _remoteSum, ref _remoteWeight, ref _lastRemoteSample, remoteSum, remoteCount, now);

        var share = Math.Exp(-dt / ShareTime.TotalSeconds);
        _localCalls = (_localCalls * share) + localCount;
        _allCalls = (_allCalls * share) + localCount + remoteCount;

        // Both zones measured: the ratio decides; otherwise nothing does and a spill winds down.
        var settings = view.Settings;
        var known = _localWeight >= MinSamples && _remoteWeight >= MinSamples && _remoteSum > 0;
        var ratio = known ? _localSum / _localWeight / (_remoteSum / _remoteWeight) : double.NaN;
        _ratio = ratio;
        var spill = Spill;
        var rise = known ? settings.SpillFor(ratio) : 0;
        var fall = known ? settings.SpillFor(ratio / Hysteresis) : 0;
        if (rise > spill)
        {
            spill += (rise - spill) * (1 - Math.Exp(-dt / RiseTime.TotalSeconds));
        }
        else if (fall < spill)
        {
            spill += (fall - spill) * (1 - Math.Exp(-dt / FallTime.TotalSeconds));
        }

        // The last percent either way is the smoothing's tail, not a decision.
        spill = spill < 0.01 ? 0 : spill > 0.99 ? 1 : spill;
        Volatile.Write(ref _spillBits, BitConverter.DoubleToInt64Bits(spill));

        // Keep the other zones measured while calls do not go there anyway.
        _samplesSinceProbe += localCount + remoteCount;
        var probeDue = _remoteWeight < MinSamples
            ? _samplesSinceProbe >= FirstProbeEvery
            : (now - _lastRemoteSample) / _frequency >= ProbeInterval.TotalSeconds && _samplesSinceProbe >= ProbeEvery;
        if (view.Remote is not null && spill == 0 && probeDue)
        {
            _samplesSinceProbe = 0;
            Volatile.Write(ref _probe, 1);
        }
    }

    /// <summary>
    /// Folds <paramref name="count"/> samples summing to <paramref name="sum"/> into a zone's decayed sum and count (its
    /// mean is their quotient): what came before keeps the larger of e^(−Δt / <see cref="MeanTime"/>), Δt since the
    /// zone's previous samples, and <see cref="MeanSamples"/> / (<see cref="MeanSamples"/> + count) — a time-weighted
    /// mean under dense traffic, the mean of the last few dozen samples under sparse traffic.
    /// </summary>
    private void Fold(ref double total, ref double weight, ref long lastSample, double sum, long count, long now)
    {
        if (count == 0)
        {
            return;
        }

        var dt = lastSample == 0 ? double.PositiveInfinity : (now - lastSample) / _frequency;
        var keep = Math.Max(Math.Exp(-dt / MeanTime.TotalSeconds), MeanSamples / (MeanSamples + count));
        total = (total * keep) + sum;
        weight = (weight * keep) + count;
        lastSample = now;
    }

    /// <summary>Reads what the status shows (the means in seconds; not atomic as a whole, which a status page does not need).</summary>
    public ZoneReading Read() => new(
        Spill,
        _allCalls > 0 ? _localCalls / _allCalls : null,
        _localWeight > 0 ? _localSum / _localWeight / _frequency : null,
        _remoteWeight > 0 ? _remoteSum / _remoteWeight / _frequency : null,
        double.IsNaN(_ratio) ? null : _ratio);
}

/// <summary>What a <see cref="ZoneBalance"/> says at one moment.</summary>
/// <param name="Spill">The share of calls that ignore zones.</param>
/// <param name="LocalShare">The share of the recent calls answered in the caller's zone, or <see langword="null"/> before any.</param>
/// <param name="LocalSeconds">The zone's mean answer time, or <see langword="null"/> before a sample.</param>
/// <param name="RemoteSeconds">The other zones' mean answer time, or <see langword="null"/> before a sample.</param>
/// <param name="Ratio">The last ratio of the two, or <see langword="null"/> while one of them is unknown.</param>
internal readonly record struct ZoneReading(double Spill, double? LocalShare, double? LocalSeconds, double? RemoteSeconds, double? Ratio);
