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

    /// <summary>
    /// A window whose mean is more than this times the zone's counts as this times it, unless the zone's previous window
    /// was one too (the peak-EWMA rule of <see cref="EndpointState"/>): one slow probe, or a pause, among a sparse
    /// stream of samples would otherwise hold the mean up for dozens of samples; a real change is followed from its
    /// second window. Found by the demo on a loaded machine: a few 70 ms probes among 5 ms ones kept the other zone's
    /// mean at 14 ms, and a zone 30 ms slower did not spill.
    /// </summary>
    internal const double MaxSpike = 2.0;

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
    private long _samplesSinceProbe;
    private ZoneMean _local;
    private ZoneMean _remote;
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

        _local.Fold(localSum, localCount, now, _frequency);
        _remote.Fold(remoteSum, remoteCount, now, _frequency);

        var share = Math.Exp(-dt / ShareTime.TotalSeconds);
        _localCalls = (_localCalls * share) + localCount;
        _allCalls = (_allCalls * share) + localCount + remoteCount;

        // Both zones measured: the ratio decides; otherwise nothing does and a spill winds down.
        var settings = view.Settings;
        var known = _local.Weight >= MinSamples && _remote.Weight >= MinSamples && _remote.Mean > 0;
        var ratio = known ? _local.Mean / _remote.Mean : double.NaN;
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
        var probeDue = _remote.Weight < MinSamples
            ? _samplesSinceProbe >= FirstProbeEvery
            : (now - _remote.LastSample) / _frequency >= ProbeInterval.TotalSeconds && _samplesSinceProbe >= ProbeEvery;
        if (view.Remote is not null && spill == 0 && probeDue)
        {
            _samplesSinceProbe = 0;
            Volatile.Write(ref _probe, 1);
        }
    }

    /// <summary>Reads what the status shows (the means in seconds; not atomic as a whole, which a status page does not need).</summary>
    public ZoneReading Read() => new(
        Spill,
        _allCalls > 0 ? _localCalls / _allCalls : null,
        _local.Weight > 0 ? _local.Mean / _frequency : null,
        _remote.Weight > 0 ? _remote.Mean / _frequency : null,
        double.IsNaN(_ratio) ? null : _ratio);
}

/// <summary>
/// The mean answer time of one side (the caller's zone, or the others) as a decayed sum and count of samples: what came
/// before keeps the larger of e^(−Δt / <see cref="ZoneBalance.MeanTime"/>), Δt since the side's previous samples, and
/// <see cref="ZoneBalance.MeanSamples"/> / (<see cref="ZoneBalance.MeanSamples"/> + count) — a time-weighted mean under
/// dense traffic, the mean of the last few dozen samples under sparse traffic — and a lone spike is capped
/// (<see cref="ZoneBalance.MaxSpike"/>).
/// </summary>
internal struct ZoneMean
{
    private double _sum;
    private bool _spiked;

    /// <summary>Gets the decayed number of samples.</summary>
    public double Weight { get; private set; }

    /// <summary>Gets the timestamp of the last samples, or 0.</summary>
    public long LastSample { get; private set; }

    /// <summary>Gets the mean in timestamp units (0 without samples).</summary>
    public readonly double Mean => Weight > 0 ? _sum / Weight : 0;

    /// <summary>Folds <paramref name="count"/> samples summing to <paramref name="sum"/> (timestamp units) in.</summary>
    public void Fold(double sum, long count, long now, double frequency)
    {
        if (count == 0)
        {
            return;
        }

        var mean = Mean;
        var spike = Weight >= ZoneBalance.MinSamples && sum > ZoneBalance.MaxSpike * mean * count;
        if (spike && !_spiked)
        {
            sum = ZoneBalance.MaxSpike * mean * count;
        }

        _spiked = spike;
        var dt = LastSample == 0 ? double.PositiveInfinity : (now - LastSample) / frequency;
        var keep = Math.Max(Math.Exp(-dt / ZoneBalance.MeanTime.TotalSeconds), ZoneBalance.MeanSamples / (ZoneBalance.MeanSamples + count));
        _sum = (_sum * keep) + sum;
        Weight = (Weight * keep) + count;
        LastSample = now;
    }
}

/// <summary>What a <see cref="ZoneBalance"/> says at one moment.</summary>
/// <param name="Spill">The share of calls that ignore zones.</param>
/// <param name="LocalShare">The share of the recent calls answered in the caller's zone, or <see langword="null"/> before any.</param>
/// <param name="LocalSeconds">The zone's mean answer time, or <see langword="null"/> before a sample.</param>
/// <param name="RemoteSeconds">The other zones' mean answer time, or <see langword="null"/> before a sample.</param>
/// <param name="Ratio">The last ratio of the two, or <see langword="null"/> while one of them is unknown.</param>
internal readonly record struct ZoneReading(double Spill, double? LocalShare, double? LocalSeconds, double? RemoteSeconds, double? Ratio);
