using System.Collections.Concurrent;
using System.Diagnostics;

namespace MeshClient.LoadTest;

/// <summary>
/// Records every request exactly: its latency (Stopwatch ticks) and whether it succeeded, in chunked arrays
/// appended lock-free. Exact nearest-rank percentiles over a sorted copy, not an HdrHistogram: at ≤ a few million
/// requests per cell the sorted array is affordable, has no bucket error, and is the measured anchors' method,
/// so the numbers compare one to one. Chunks are allocated outside the hot path only when one fills (2^17 entries,
/// 1 MiB); their bytes are reported in <see cref="AllocatedBytes"/> so that allocations per request can exclude them.
/// </summary>
public sealed class LatencyRecorder
{
    private const int ChunkBits = 17;
    private const int ChunkSize = 1 << ChunkBits;

    private readonly long[]?[] _chunks = new long[]?[4096];
    private readonly ConcurrentDictionary<string, long> _errors = new(StringComparer.Ordinal);
    private long _count;
    private long _failures;
    private long _allocated;

    public LatencyRecorder(long expected = 0)
    {
        // Pre-allocate what the cell is expected to need, so that it is not allocated while measuring.
        var chunks = Math.Min(_chunks.Length, (int)((expected + ChunkSize - 1) >> ChunkBits));
        for (var i = 0; i < chunks; i++)
        {
            _chunks[i] = new long[ChunkSize];
        }
    }

    public long Count => Math.Min(Interlocked.Read(ref _count), (long)_chunks.Length * ChunkSize);

    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Gets the bytes this recorder allocated while recording (chunks not allocated up front).</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocated);

    public IReadOnlyDictionary<string, long> Errors => _errors;

    public void Record(long ticks, bool success, string? error = null)
    {
        var index = Interlocked.Increment(ref _count) - 1;
        var chunkIndex = index >> ChunkBits;
        if (chunkIndex >= _chunks.Length)
        {
            return; // 536 M requests: beyond any cell this harness runs.
        }

        var chunk = Volatile.Read(ref _chunks[chunkIndex]);
        if (chunk is null)
        {
            var fresh = new long[ChunkSize];
            chunk = Interlocked.CompareExchange(ref _chunks[chunkIndex], fresh, null) ?? fresh;
            if (ReferenceEquals(chunk, fresh))
            {
                Interlocked.Add(ref _allocated, ((long)ChunkSize * sizeof(long)) + 24);
            }
        }

        // Bit 0 marks a failure; the latency is in the other 63 bits.
        chunk[index & (ChunkSize - 1)] = (Math.Max(0, ticks) << 1) | (success ? 0L : 1L);
        if (!success)
        {
            Interlocked.Increment(ref _failures);
            if (error is not null)
            {
                _errors.AddOrUpdate(error, 1, static (_, n) => n + 1);
            }
        }
    }

    /// <summary>Sorted latencies in microseconds (successes and failures alike).</summary>
    public double[] SortedMicroseconds()
    {
        var count = (int)Math.Min(Count, int.MaxValue);
        var values = new long[count];
        for (var i = 0; i < count; i++)
        {
            var chunk = _chunks[i >> ChunkBits];
            values[i] = chunk is null ? 0 : chunk[i & (ChunkSize - 1)] >> 1;
        }

        Array.Sort(values);
        var scale = 1_000_000.0 / Stopwatch.Frequency;
        var result = new double[count];
        for (var i = 0; i < count; i++)
        {
            result[i] = values[i] * scale;
        }

        return result;
    }

    /// <summary>Nearest rank: the smallest value with at least <paramref name="quantile"/> of the values at or below it.</summary>
    public static double Percentile(double[] sorted, double quantile)
    {
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(quantile * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}
