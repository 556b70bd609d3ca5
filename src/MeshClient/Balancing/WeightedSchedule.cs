namespace MeshClient.Balancing;

/// <summary>
/// Builds the order of a smooth weighted round robin as an earliest-deadline-first schedule (Envoy's EDF
/// scheduler): each endpoint's next deadline is its last one plus 1/weight, ties in list order. The order is
/// computed once per snapshot, so a round-robin pick is one interlocked increment and one array read. Weight sums
/// above <see cref="MaxLength"/> get no schedule (<see cref="RoundRobinPolicy"/> then strides over the prefix sums):
/// scaling them down distorted the shares (10,000 endpoints weighted 1–100 gave weight-1 endpoints 8.2 times their
/// share), and building a long schedule held the table lock for tens of milliseconds.
/// </summary>
internal static class WeightedSchedule
{
    /// <summary>The longest schedule built; larger weight sums (after dividing by their greatest common divisor) get none.</summary>
    internal const int MaxLength = 1 << 16;

    public static ushort[] Build(long[] endpointWeights)
    {
        if (endpointWeights.Length is 0 or > ushort.MaxValue)
        {
            // Empty: the round-robin policy then strides over the prefix sums instead.
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
            return [];
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

    /// <summary>
    /// The step of a round robin over a weight sum too large for a schedule: coprime with <paramref name="total"/>, so
    /// that <c>i × stride mod total</c> visits every ticket once per <paramref name="total"/> picks (each endpoint gets
    /// exactly its weight per period), and near total / φ, so that consecutive picks land far apart on the prefix sums
    /// (an endpoint gets no run of consecutive picks unless it holds more than a third of the weight).
    /// </summary>
    public static long Stride(long total)
    {
        if (total <= 1)
        {
            return 1;
        }

        var stride = Math.Max(1, (long)(total * 0.6180339887498949));
        while (Gcd(stride, total) != 1)
        {
            stride++;
        }

        return stride;
    }

    internal static long Gcd(long a, long b)
    {
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }

        return a;
    }
}
