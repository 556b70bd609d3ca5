using System.Numerics;

namespace MeshClient.Hedging;

/// <summary>
/// A service's observed latency, for the adaptive hedge delay: a fixed log-bucketed histogram (16 buckets an octave,
/// at most 6.25% above the true value, 1 µs to 71 min) of atomic counts in two windows of <see cref="TimeProvider"/>
/// time that take turns, so that a percentile covers the last one to two windows. Recording is lock-free and allocates
/// nothing; a write racing a window's reset may be lost, which only blurs the estimate (as <c>RollingCounter</c>).
/// Written here because no library fits this hot path: HdrHistogram's recorder allocates a histogram per interval
/// read and brings a dependency, where this needs two fixed windows and one percentile.
/// </summary>
internal sealed class LatencyHistogram
{
    private const int SubBucketBits = 4;
    private const int SubBuckets = 1 << SubBucketBits;
    private const long MaxMicroseconds = uint.MaxValue;

    /// <summary>The number of buckets: the linear ones below 16 µs, then 16 per octave up to 2^32 µs.</summary>
    internal const int BucketCount = SubBuckets * (32 - SubBucketBits + 1);

    private readonly TimeProvider _time;
    private readonly long _windowTicks;
    private readonly int[][] _counts = [new int[BucketCount], new int[BucketCount]];
    private readonly int[] _totals = new int[2];
    private readonly long[] _epochs = [-1, -1];

    public LatencyHistogram(TimeProvider time, TimeSpan window)
    {
        _time = time;
        _windowTicks = Math.Max(1, (long)(window.TotalSeconds * time.TimestampFrequency));
    }

    /// <summary>Records one latency, <paramref name="elapsed"/> timestamp units, at <paramref name="now"/> (a timestamp of the same clock).</summary>
    public void Record(long elapsed, long now) => Add(BucketOf(ToMicroseconds(elapsed)), now);

    /// <summary>
    /// Records, at <paramref name="now"/>, a latency known only to exceed every answer (an attempt cancelled unanswered):
    /// it counts in the last bucket, so that a percentile it reaches reads as the longest latency this tracks.
    /// </summary>
    public void RecordBeyond(long now) => Add(BucketCount - 1, now);

    private void Add(int bucket, long now)
    {
        var epoch = now / _windowTicks;
        var slot = (int)(epoch & 1);
        var seen = Volatile.Read(ref _epochs[slot]);
        if (seen != epoch && Interlocked.CompareExchange(ref _epochs[slot], epoch, seen) == seen)
        {
            // This window's turn again: what it held is two windows old.
            Array.Clear(_counts[slot]);
            Volatile.Write(ref _totals[slot], 0);
        }

        Interlocked.Increment(ref _counts[slot][bucket]);
        Interlocked.Increment(ref _totals[slot]);
    }

    /// <summary>
    /// The latency at <paramref name="percentile"/> (0–100) over the current and the previous window, rounded up to its
    /// bucket's upper bound, or <see langword="null"/> with fewer than <paramref name="minSamples"/> recorded there.
    /// </summary>
    public TimeSpan? Percentile(double percentile, int minSamples, long now)
    {
        var epoch = now / _windowTicks;
        var first = Volatile.Read(ref _epochs[0]);
        var second = Volatile.Read(ref _epochs[1]);
        var useFirst = first == epoch || first == epoch - 1;
        var useSecond = second == epoch || second == epoch - 1;
        long total = (useFirst ? Volatile.Read(ref _totals[0]) : 0) + (useSecond ? Volatile.Read(ref _totals[1]) : 0);
        if (total < minSamples || total == 0)
        {
            return null;
        }

        var rank = (long)Math.Ceiling(total * percentile / 100.0);
        long seen = 0;
        for (var i = 0; i < BucketCount; i++)
        {
            seen += (useFirst ? Volatile.Read(ref _counts[0][i]) : 0) + (useSecond ? Volatile.Read(ref _counts[1][i]) : 0);
            if (seen >= rank)
            {
                return TimeSpan.FromMicroseconds(UpperBound(i));
            }
        }

        return TimeSpan.FromMicroseconds(UpperBound(BucketCount - 1)); // counts lost to a reset race
    }

    private long ToMicroseconds(long elapsed) =>
        elapsed <= 0 ? 0 : Math.Min(MaxMicroseconds, (long)(elapsed * (1_000_000.0 / _time.TimestampFrequency)));

    /// <summary>The bucket of a value in microseconds: itself below 16, else 16 per octave (its top five bits).</summary>
    internal static int BucketOf(long microseconds)
    {
        if (microseconds < SubBuckets)
        {
            return (int)microseconds;
        }

        var top = 63 - BitOperations.LeadingZeroCount((ulong)microseconds); // at least 4
        var sub = (int)(microseconds >> (top - SubBucketBits)) & (SubBuckets - 1);
        return ((top - SubBucketBits + 1) * SubBuckets) + sub;
    }

    /// <summary>The exclusive upper bound, in microseconds, of a bucket.</summary>
    internal static long UpperBound(int bucket)
    {
        if (bucket < SubBuckets)
        {
            return bucket + 1;
        }

        var top = (bucket / SubBuckets) + SubBucketBits - 1;
        var sub = bucket % SubBuckets;
        var width = 1L << (top - SubBucketBits);
        return ((SubBuckets + sub) * width) + width;
    }
}
