using MeshClient.Model;

namespace MeshClient.Balancing;

/// <summary>
/// An immutable view of one service's endpoints, rebuilt off the hot path whenever discovery, health or options
/// change. The pick reads one volatile reference to it and allocates nothing.
/// </summary>
internal sealed class EndpointSnapshot
{
    private readonly EndpointSnapshot? _parent;
    private readonly double _decay = 1;
    private readonly double _failurePenalty;
    private readonly bool _unreachableAdmitted;
    private int _roundRobinCursor;

    /// <param name="serviceName">The service.</param>
    /// <param name="all">Every discovered endpoint.</param>
    /// <param name="active">The endpoints that take traffic.</param>
    /// <param name="policy">The load-balancing policy.</param>
    /// <param name="panic">Whether the service is in panic mode.</param>
    /// <param name="roundRobinStart">Where the round-robin order starts.</param>
    /// <param name="weights">
    /// The weights the balancer uses for <paramref name="active"/>, when they differ from the discovered ones (slow
    /// start scales them all); <see langword="null"/> for the discovered weights.
    /// </param>
    /// <param name="zones">The service's zone routing, or <see langword="null"/> when it is off.</param>
    public EndpointSnapshot(string serviceName, EndpointEntry[] all, EndpointEntry[] active, LoadBalancingPolicy policy, bool panic, int roundRobinStart, long[]? weights = null, ZoneContext? zones = null)
        : this(serviceName, all, active, policy, panic, roundRobinStart, weights, parent: null, zones)
    {
    }

    private EndpointSnapshot(string serviceName, EndpointEntry[] all, EndpointEntry[] active, LoadBalancingPolicy policy, bool panic, int roundRobinStart, long[]? weights, EndpointSnapshot? parent, ZoneContext? zones)
    {
        _parent = parent;
        ServiceName = serviceName;
        All = all;
        Active = active;
        Policy = policy;
        Panic = panic;
        if (weights is null)
        {
            weights = new long[active.Length];
            for (var i = 0; i < active.Length; i++)
            {
                weights[i] = active[i].Weight;
            }
        }

        Weights = weights;
        CumulativeWeights = new long[active.Length];
        long total = 0, discovered = 0;
        for (var i = 0; i < active.Length; i++)
        {
            total += weights[i];
            discovered += active[i].Weight;
            CumulativeWeights[i] = total;
        }

        TotalWeight = total;

        // In flight per unit of discovered weight: the balancer's weights may be scaled (slow start), the load is not.
        LoadPerRequest = new double[active.Length];
        var unit = total == 0 ? 1.0 : (double)total / discovered;
        for (var i = 0; i < active.Length; i++)
        {
            LoadPerRequest[i] = unit / weights[i];
        }

        RoundRobinSequence = policy.NeedsRoundRobinSequence ? WeightedSchedule.Build(weights) : [];
        RoundRobinStride = policy.NeedsRoundRobinSequence && RoundRobinSequence.Length == 0 ? WeightedSchedule.Stride(total) : 0;
        _roundRobinCursor = roundRobinStart;
        Zones = zones is null ? null : ZoneView.Create(this, zones);
        Https = parent is null ? CreateHttpsView(all, active, weights, roundRobinStart, zones) : this;
    }

    public string ServiceName { get; }

    /// <summary>Gets the peak-EWMA decay time in timestamp units.</summary>
    public double Decay { get => _parent?.Decay ?? _decay; init => _decay = value; }

    /// <summary>Gets the latency recorded for a failed attempt, in timestamp units.</summary>
    public double FailurePenalty { get => _parent?.FailurePenalty ?? _failurePenalty; init => _failurePenalty = value; }

    /// <summary>Gets every discovered endpoint.</summary>
    public EndpointEntry[] All { get; }

    /// <summary>Gets the endpoints that take traffic: the healthy ones, or all of them in panic mode.</summary>
    public EndpointEntry[] Active { get; }

    /// <summary>Gets the weights the balancer uses for <see cref="Active"/> (the discovered ones, scaled by slow start).</summary>
    public long[] Weights { get; }

    /// <summary>Gets the prefix sums of <see cref="Weights"/>.</summary>
    public long[] CumulativeWeights { get; }

    public long TotalWeight { get; }

    /// <summary>
    /// Gets what one request in flight adds to the load of each of <see cref="Active"/>: 1 / its weight (in units of
    /// discovered weight). Under equal latency, equal load per weight means shares that follow the weights.
    /// </summary>
    public double[] LoadPerRequest { get; }

    public LoadBalancingPolicy Policy { get; }

    /// <summary>Gets a value indicating whether too few endpoints are healthy, so traffic goes to all of them.</summary>
    public bool Panic { get; }

    /// <summary>
    /// Gets a value indicating whether every endpoint was ejected as unreachable when the snapshot was built: in panic
    /// mode they then take attempts (one of them may be back); otherwise an unreachable endpoint never does.
    /// </summary>
    public bool UnreachableAdmitted { get => _parent?.UnreachableAdmitted ?? _unreachableAdmitted; init => _unreachableAdmitted = value; }

    /// <summary>Gets the smooth weighted round-robin order of <see cref="Active"/> (indices), for the round-robin policy.</summary>
    public ushort[] RoundRobinSequence { get; }

    /// <summary>
    /// Gets the view of this snapshot for an https request: only the endpoints that <see cref="EndpointEntry.ServesHttps"/>
    /// (same panic state, weights and policy), so that an https request is never sent in cleartext. It is this snapshot
    /// when every endpoint serves https, and <see langword="null"/> when none does. Built with the snapshot (off the
    /// hot path); the pick only reads the reference.
    /// </summary>
    public EndpointSnapshot? Https { get; }

    /// <summary>
    /// Gets the step of the round robin over the prefix sums when there is no <see cref="RoundRobinSequence"/> (weight
    /// sums above <see cref="WeightedSchedule.MaxLength"/>), or 0.
    /// </summary>
    public long RoundRobinStride { get; }

    /// <summary>
    /// Gets the zones of this snapshot (and of its https view) when zone routing is on for the service and its
    /// endpoints say where they are; <see langword="null"/> otherwise, and in the views of one zone.
    /// </summary>
    public ZoneView? Zones { get; }

    /// <summary>
    /// Gets a value indicating whether the attempts picked from this snapshot (or one of its views) leave latency samples
    /// for zone routing (<see cref="ZoneBalance"/>).
    /// </summary>
    public bool SamplesZones => _parent?.SamplesZones ?? Zones is not null;

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

    /// <summary>
    /// A view of some of <see cref="Active"/> (by index) with their weights, for zone routing: same service, policy,
    /// panic state and tuning; its own round-robin order.
    /// </summary>
    internal EndpointSnapshot CreateView(List<int> indices)
    {
        var active = new EndpointEntry[indices.Count];
        var weights = new long[indices.Count];
        for (var i = 0; i < indices.Count; i++)
        {
            active[i] = Active[indices[i]];
            weights[i] = Weights[indices[i]];
        }

        return new EndpointSnapshot(ServiceName, All, active, Policy, Panic, Volatile.Read(ref _roundRobinCursor), weights, this, zones: null);
    }

    private EndpointSnapshot? CreateHttpsView(EndpointEntry[] all, EndpointEntry[] active, long[] weights, int roundRobinStart, ZoneContext? zones)
    {
        var secure = 0;
        foreach (var entry in all)
        {
            secure += entry.ServesHttps ? 1 : 0;
        }

        if (secure == all.Length)
        {
            return this;
        }

        if (secure == 0)
        {
            return null;
        }

        var secureAll = Array.FindAll(all, static e => e.ServesHttps);
        var count = 0;
        foreach (var entry in active)
        {
            count += entry.ServesHttps ? 1 : 0;
        }

        var secureActive = new EndpointEntry[count];
        var secureWeights = new long[count];
        for (int i = 0, j = 0; i < active.Length; i++)
        {
            if (active[i].ServesHttps)
            {
                secureActive[j] = active[i];
                secureWeights[j++] = weights[i];
            }
        }

        return new EndpointSnapshot(ServiceName, secureAll, secureActive, Policy, Panic, roundRobinStart, secureWeights, this, zones);
    }
}
