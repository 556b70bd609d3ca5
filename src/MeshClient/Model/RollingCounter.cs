namespace MeshClient.Model;

/// <summary>
/// Two counts (total, marked) over a rolling window of ten buckets, lock-free. A bucket is recycled when its
/// epoch passes; a write racing the recycle may be lost, which only blurs a statistic.
/// Written here because Polly keeps its health metrics private to its circuit breaker.
/// </summary>
internal sealed class RollingCounter
{
    private const int BucketCount = 10;
    private readonly TimeProvider _time;
    private readonly long _bucketTicks;
    private readonly long[] _epochs = new long[BucketCount];
    private readonly int[] _totals = new int[BucketCount];
    private readonly int[] _marked = new int[BucketCount];

    public RollingCounter(TimeProvider time, TimeSpan window)
    {
        _time = time;
        Window = window;
        _bucketTicks = Math.Max(1, (long)(window.TotalSeconds * time.TimestampFrequency / BucketCount));
        Array.Fill(_epochs, -1);
    }

    public TimeSpan Window { get; }

    public bool Matches(TimeSpan window) => Window == window;

    public void Add(bool marked) => Add(marked, _time.GetTimestamp());

    /// <summary>Adds one count at <paramref name="timestamp"/> (a reading of the counter's clock the caller already has).</summary>
    public void Add(bool marked, long timestamp)
    {
        var epoch = timestamp / _bucketTicks;
        var i = (int)(epoch % BucketCount);
        var seen = Volatile.Read(ref _epochs[i]);
        if (seen != epoch && Interlocked.CompareExchange(ref _epochs[i], epoch, seen) == seen)
        {
            Volatile.Write(ref _totals[i], 0);
            Volatile.Write(ref _marked[i], 0);
        }

        Interlocked.Increment(ref _totals[i]);
        if (marked)
        {
            Interlocked.Increment(ref _marked[i]);
        }
    }

    /// <summary>
    /// Takes back one count added earlier in the window (from the newest bucket that has one), for an event that
    /// was counted in advance and did not happen.
    /// </summary>
    public void Remove(bool marked)
    {
        var epoch = _time.GetTimestamp() / _bucketTicks;
        for (var age = 0; age < BucketCount; age++)
        {
            var i = (int)((epoch - age) % BucketCount);
            if (i < 0 || Volatile.Read(ref _epochs[i]) != epoch - age || Volatile.Read(ref (marked ? ref _marked[i] : ref _totals[i])) <= 0)
            {
                continue;
            }

            Interlocked.Decrement(ref _totals[i]);
            if (marked)
            {
                Interlocked.Decrement(ref _marked[i]);
            }

            return;
        }
    }

    /// <summary>Sums the buckets of the current window.</summary>
    public (int Total, int Marked) Sum()
    {
        var epoch = _time.GetTimestamp() / _bucketTicks;
        int total = 0, marked = 0;
        for (var i = 0; i < BucketCount; i++)
        {
            var age = epoch - Volatile.Read(ref _epochs[i]);
            if (age >= 0 && age < BucketCount)
            {
                total += Volatile.Read(ref _totals[i]);
                marked += Volatile.Read(ref _marked[i]);
            }
        }

        return (total, marked);
    }

    public void Reset() => Array.Fill(_epochs, -1);
}
