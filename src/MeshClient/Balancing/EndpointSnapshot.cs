namespace MeshClient.Balancing;

/// <summary>
/// An immutable view of one service's endpoints, rebuilt off the hot path whenever discovery, health or options
/// change. The pick reads one volatile reference to it and allocates nothing.
/// </summary>
internal sealed class EndpointSnapshot
{
    private int _roundRobinCursor;

    public EndpointSnapshot(string serviceName, EndpointEntry[] all, EndpointEntry[] active, LoadBalancingPolicy policy, bool panic, int roundRobinStart)
    {
        ServiceName = serviceName;
        All = all;
        Active = active;
        Policy = policy;
        Panic = panic;
        CumulativeWeights = new long[active.Length];
        long total = 0;
        for (var i = 0; i < active.Length; i++)
        {
            total += active[i].Weight;
            CumulativeWeights[i] = total;
        }

        TotalWeight = total;
        RoundRobinSequence = policy.NeedsRoundRobinSequence ? WeightedSchedule.Build(active) : [];
        _roundRobinCursor = roundRobinStart;
    }

    public string ServiceName { get; }

    /// <summary>Gets the peak-EWMA decay time in timestamp units.</summary>
    public double Decay { get; init; } = 1;

    /// <summary>Gets the latency recorded for a failed attempt, in timestamp units.</summary>
    public double FailurePenalty { get; init; }

    /// <summary>Gets every discovered endpoint.</summary>
    public EndpointEntry[] All { get; }

    /// <summary>Gets the endpoints that take traffic: the healthy ones, or all of them in panic mode.</summary>
    public EndpointEntry[] Active { get; }

    /// <summary>Gets the prefix sums of the weights of <see cref="Active"/>.</summary>
    public long[] CumulativeWeights { get; }

    public long TotalWeight { get; }

    public LoadBalancingPolicy Policy { get; }

    /// <summary>Gets a value indicating whether too few endpoints are healthy, so traffic goes to all of them.</summary>
    public bool Panic { get; }

    /// <summary>Gets the smooth weighted round-robin order of <see cref="Active"/> (indices), for the round-robin policy.</summary>
    public ushort[] RoundRobinSequence { get; }

    public int NextRoundRobin() => Interlocked.Increment(ref _roundRobinCursor);

    /// <summary>Draws an index of <see cref="Active"/> with probability proportional to its weight.</summary>
    public int DrawWeighted(long ticket)
    {
        var cumulative = CumulativeWeights;
        if (cumulative.Length <= 8)
        {
            for (var i = 0; i < cumulative.Length; i++)
            {
                if (ticket < cumulative[i])
                {
                    return i;
                }
            }

            return cumulative.Length - 1;
        }

        // First index whose prefix sum exceeds the ticket.
        int lo = 0, hi = cumulative.Length - 1;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (cumulative[mid] > ticket)
            {
                hi = mid;
            }
            else
            {
                lo = mid + 1;
            }
        }

        return lo;
    }
}
