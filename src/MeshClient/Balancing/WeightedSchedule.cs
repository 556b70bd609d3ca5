namespace MeshClient.Balancing;

/// <summary>
/// Builds the order of a smooth weighted round robin as an earliest-deadline-first schedule (Envoy's EDF
/// scheduler): each endpoint's next deadline is its last one plus 1/weight, ties in list order. The order is
/// computed once per snapshot, so a round-robin pick is one interlocked increment and one array read.
/// </summary>
internal static class WeightedSchedule
{
    /// <summary>The longest schedule kept; larger weight sums are scaled down to it (an error below 1/65536 per endpoint).</summary>
    internal const int MaxLength = 1 << 16;

    public static ushort[] Build(long[] endpointWeights)
    {
        if (endpointWeights.Length is 0 or > ushort.MaxValue)
        {
            // Empty: the round-robin policy then draws by weight instead.
            return [];
        }

        var weights = new long[endpointWeights.Length];
        long gcd = 0, total = 0;
        for (var i = 0; i < endpointWeights.Length; i++)
        {
            weights[i] = endpointWeights[i];
            gcd = Gcd(gcd, weights[i]);
        }

        for (var i = 0; i < weights.Length; i++)
        {
            weights[i] /= gcd;
            total += weights[i];
        }

        if (total > MaxLength)
        {
            total = 0;
            var scale = (double)MaxLength / weights.Sum();
            for (var i = 0; i < weights.Length; i++)
            {
                weights[i] = Math.Max(1, (long)(weights[i] * scale));
                total += weights[i];
            }
        }

        var sequence = new ushort[total];
        var queue = new PriorityQueue<int, (double Deadline, int Index)>(weights.Length);
        for (var i = 0; i < weights.Length; i++)
        {
            queue.Enqueue(i, (1.0 / weights[i], i));
        }

        for (var n = 0; n < sequence.Length; n++)
        {
            queue.TryDequeue(out var index, out var priority);
            sequence[n] = (ushort)index;
            queue.Enqueue(index, (priority.Deadline + (1.0 / weights[index]), index));
        }

        return sequence;
    }

    private static long Gcd(long a, long b)
    {
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }

        return a;
    }
}
