using MeshClient.Configuration;
using MeshClient.Model;

namespace MeshClient.Balancing;

/// <summary>
/// gRPC's weighted round robin (gRFC A58; Envoy's <c>client_side_weighted_round_robin</c>): smooth weighted round robin
/// whose weights come from the load each endpoint reports of itself in its responses (ORCA, <see cref="OrcaLoadReport"/>):
/// <c>weight = qps / (utilization + penalty × eps / qps)</c> — the rate an endpoint serves per unit of its utilization,
/// so an endpoint twice as busy for the same rate (other clients, a noisy neighbour) gets half the traffic.
/// <para>
/// A58's rules: a weight is used only after the endpoint has reported for <c>BlackoutPeriod</c> without a gap (a new
/// endpoint, one whose weight expired, one readmitted after an ejection); it expires <c>WeightExpirationPeriod</c>
/// after the last report; an endpoint without a usable weight gets the mean of the others'; with fewer than two
/// usable weights the configured weights apply (the mesh's <see cref="RoundRobinPolicy"/>). Once reports flow, the
/// reported weights replace the configured ones (which would count an endpoint's capacity twice); slow start still
/// scales them.
/// </para>
/// <para>
/// The weights are computed off the request path, every <c>WeightUpdatePeriod</c>, by rebuilding the service's snapshot
/// (<see cref="LoadReportWeights"/>, like <see cref="SlowStartWeights"/>): integer weights (the largest 100, so a
/// percent of resolution) and the snapshot's precomputed EDF order (<see cref="WeightedSchedule"/>, A58's scheduler is
/// EDF too). A pick is the round robin's: one interlocked increment and one array read, no clock, no lock, 0 B.
/// </para>
/// </summary>
internal sealed class WeightedRoundRobinPolicy : LoadBalancingPolicy
{
    /// <summary>The integer weight of the heaviest endpoint: weights keep a percent of resolution, schedules stay short.</summary>
    internal const int Scale = 100;

    private readonly TimeProvider _time;
    private readonly long _blackout;
    private readonly long _expiration;
    private readonly double _penalty;

    public WeightedRoundRobinPolicy(WeightedRoundRobinOptions global, WeightedRoundRobinOptions? service, TimeProvider time)
    {
        _time = time;
        var frequency = time.TimestampFrequency;
        BlackoutPeriod = service?.BlackoutPeriod ?? global.BlackoutPeriod ?? WeightedRoundRobinOptions.DefaultBlackoutPeriod;
        WeightExpirationPeriod = service?.WeightExpirationPeriod ?? global.WeightExpirationPeriod ?? WeightedRoundRobinOptions.DefaultWeightExpirationPeriod;
        UpdatePeriod = service?.WeightUpdatePeriod ?? global.WeightUpdatePeriod ?? WeightedRoundRobinOptions.DefaultWeightUpdatePeriod;
        _penalty = service?.ErrorUtilizationPenalty ?? global.ErrorUtilizationPenalty ?? WeightedRoundRobinOptions.DefaultErrorUtilizationPenalty;
        _blackout = (long)(BlackoutPeriod.TotalSeconds * frequency);
        _expiration = (long)(WeightExpirationPeriod.TotalSeconds * frequency);
    }

    public override string Name => LoadBalancerNames.WeightedRoundRobin;

    public override bool NeedsRoundRobinSequence => true;

    public override bool ReadsLoadReports => true;

    public TimeSpan BlackoutPeriod { get; }

    public TimeSpan WeightExpirationPeriod { get; }

    /// <summary>Gets how often the weights are computed again (the snapshot rebuilt).</summary>
    public TimeSpan UpdatePeriod { get; }

    protected override EndpointEntry PickCore(EndpointSnapshot snapshot, Randomizer random) => RoundRobinPolicy.PickInOrder(snapshot, random);

    /// <summary>
    /// The weights of <paramref name="active"/> for a new snapshot, from their latest reports; <paramref name="slowStart"/>
    /// (the configured weights scaled by slow start, or <see langword="null"/> for the configured weights) when fewer
    /// than two endpoints have a usable weight. Off the request path (a snapshot rebuild).
    /// </summary>
    /// <param name="active">The endpoints that take traffic.</param>
    /// <param name="slowStart">The weights slow start computed (<see cref="SlowStartWeights.Compute"/>), or <see langword="null"/>.</param>
    public long[]? Weights(EndpointEntry[] active, long[]? slowStart)
    {
        var now = _time.GetTimestamp();
        var weights = new double[active.Length];
        var usable = 0;
        double sum = 0, max = 0;
        for (var i = 0; i < active.Length; i++)
        {
            var weight = Weight(active[i].State, now);
            weights[i] = weight;
            if (weight > 0)
            {
                usable++;
                sum += weight;
            }
        }

        if (usable < 2)
        {
            return slowStart; // A58: too little to weigh by; round robin by the configured weights
        }

        var mean = sum / usable;
        for (var i = 0; i < active.Length; i++)
        {
            if (weights[i] <= 0)
            {
                weights[i] = mean;
            }

            if (slowStart is not null)
            {
                weights[i] *= slowStart[i] / ((double)active[i].Weight * SlowStartWeights.Scale);
            }

            max = Math.Max(max, weights[i]);
        }

        var result = new long[active.Length];
        for (var i = 0; i < active.Length; i++)
        {
            result[i] = Math.Max(1, (long)Math.Round(weights[i] / max * Scale));
        }

        return result;
    }

    /// <summary>
    /// An endpoint's weight now, or 0 when it has none to use: no report yet, its last report older than the expiration
    /// (which also restarts its blackout), or still in its blackout.
    /// </summary>
    internal double Weight(EndpointState state, long now)
    {
        if (state.LoadReport is not { } report)
        {
            return 0;
        }

        var nonEmptySince = report.NonEmptySince;
        if (!report.TryRead(out var utilization, out var qps, out var eps, out var receivedAt))
        {
            return 0;
        }

        if (now - receivedAt >= _expiration)
        {
            report.RestartBlackout(nonEmptySince);
            return 0;
        }

        if (nonEmptySince == EndpointLoadReport.None || (_blackout > 0 && now - nonEmptySince < _blackout))
        {
            return 0;
        }

        return qps / (utilization + (eps / qps * _penalty));
    }
}
