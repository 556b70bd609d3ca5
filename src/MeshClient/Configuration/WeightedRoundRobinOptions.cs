namespace MeshClient.Configuration;

/// <summary>
/// Tuning of the <see cref="LoadBalancerNames.WeightedRoundRobin"/> policy (gRPC's <c>weighted_round_robin</c>, gRFC
/// A58; Envoy's <c>client_side_weighted_round_robin</c>), bound from <c>Mesh:WeightedRoundRobin</c> (every service) and
/// <c>Mesh:Services:{name}:WeightedRoundRobin</c> (one service; a value left unset takes the global one). Each endpoint's
/// weight is <c>qps / (utilization + ErrorUtilizationPenalty × eps / qps)</c> from the load it reports in its
/// <c>endpoint-load-metrics</c> response header (ORCA). The defaults are gRPC's.
/// </summary>
public sealed class WeightedRoundRobinOptions
{
    /// <summary>Gets the default <see cref="BlackoutPeriod"/>: 10 seconds.</summary>
    public static readonly TimeSpan DefaultBlackoutPeriod = TimeSpan.FromSeconds(10);

    /// <summary>Gets the default <see cref="WeightExpirationPeriod"/>: 3 minutes.</summary>
    public static readonly TimeSpan DefaultWeightExpirationPeriod = TimeSpan.FromMinutes(3);

    /// <summary>Gets the default <see cref="WeightUpdatePeriod"/>: 1 second.</summary>
    public static readonly TimeSpan DefaultWeightUpdatePeriod = TimeSpan.FromSeconds(1);

    /// <summary>Gets the default <see cref="ErrorUtilizationPenalty"/>: 1.0.</summary>
    public const double DefaultErrorUtilizationPenalty = 1.0;

    /// <summary>
    /// Gets or sets how long an endpoint must report its load before its weight is used (until then it gets the mean
    /// weight): a new endpoint, one whose weight expired and one readmitted after an ejection start over. Default:
    /// 10 seconds. Valid: 0 (no blackout) to 1 hour.
    /// </summary>
    public TimeSpan? BlackoutPeriod { get; set; }

    /// <summary>
    /// Gets or sets how long a weight is used after the endpoint's last report; then the endpoint gets the mean weight
    /// until it reports again (and serves a new blackout). Default: 3 minutes. Valid: 1 second to 1 day.
    /// </summary>
    public TimeSpan? WeightExpirationPeriod { get; set; }

    /// <summary>
    /// Gets or sets how often the weights are computed again from the latest reports (off the request path: the
    /// service's snapshot is rebuilt with them). Default: 1 second. Valid: 100 milliseconds to 10 minutes.
    /// </summary>
    public TimeSpan? WeightUpdatePeriod { get; set; }

    /// <summary>
    /// Gets or sets how much an endpoint's error rate (<c>eps / qps</c>) adds to its utilization, so that an endpoint
    /// that fails fast does not draw traffic. Default: 1.0. Valid: 0 (errors ignored) to 100.
    /// </summary>
    public double? ErrorUtilizationPenalty { get; set; }
}
