namespace MeshClient.Configuration;

/// <summary>
/// Hedged requests, bound from <c>Mesh:Resilience:Hedging</c> (every service) and
/// <c>Mesh:Services:{name}:Resilience:Hedging</c> (one service; a value left unset takes the global one, and unset
/// globally the default shown). When a call's attempt has not answered (its response headers) after the hedge delay,
/// another attempt of the same request goes to a <em>different</em> endpoint that the balancer picks; the first answer
/// wins and the others are cancelled, never charged against their endpoints. Only safe methods (GET, HEAD, OPTIONS,
/// TRACE) with no body or a body held in memory are hedged, never gRPC. Off by default.
/// </summary>
public sealed class MeshHedgingOptions
{
    /// <summary>Gets the default <see cref="Delay"/>: 50 ms.</summary>
    public static readonly TimeSpan DefaultDelay = TimeSpan.FromMilliseconds(50);

    /// <summary>Gets the default <see cref="MinDelay"/>: 1 ms.</summary>
    public static readonly TimeSpan DefaultMinDelay = TimeSpan.FromMilliseconds(1);

    /// <summary>Gets the default <see cref="MaxDelay"/>: 1 s.</summary>
    public static readonly TimeSpan DefaultMaxDelay = TimeSpan.FromSeconds(1);

    /// <summary>Gets the default <see cref="MaxAttempts"/>: 2 (the first attempt and one hedge).</summary>
    public const int DefaultMaxAttempts = 2;

    /// <summary>Gets the default <see cref="BudgetPercent"/>: 10.</summary>
    public const int DefaultBudgetPercent = 10;

    /// <summary>Gets the default <see cref="BudgetMinPerSecond"/>: 1.</summary>
    public const int DefaultBudgetMinPerSecond = 1;

    /// <summary>Gets or sets a value indicating whether calls are hedged. Default: <see langword="false"/>.</summary>
    public bool? Enabled { get; set; }

    /// <summary>
    /// Gets or sets how long an attempt may go without an answer before a hedge is sent (and between two hedges when
    /// <see cref="MaxAttempts"/> is above 2). With <see cref="Percentile"/> set, the delay used while the service has too
    /// few answers measured to estimate it. Default: 50 ms. Valid: 0 to 10 min.
    /// </summary>
    public TimeSpan? Delay { get; set; }

    /// <summary>
    /// Gets or sets the most attempts of one try in flight at once: the first attempt and its hedges. Default: 2.
    /// Valid: 2 to 10.
    /// </summary>
    public int? MaxAttempts { get; set; }

    /// <summary>
    /// Gets or sets the adaptive delay: hedge after the service's own observed latency at this percentile (for example
    /// 95, which hedges about 5% of calls), measured over the last 10 to 20 s of the first attempts of its hedgeable
    /// calls (one that a hedge outran counts as slower than every answer), bounded by <see cref="MinDelay"/> and
    /// <see cref="MaxDelay"/>. Default: unset, the fixed <see cref="Delay"/>. Valid: 50 to 99.99.
    /// </summary>
    public double? Percentile { get; set; }

    /// <summary>Gets or sets the shortest adaptive delay. Default: 1 ms. Valid: 0 to 10 min, at most <see cref="MaxDelay"/>.</summary>
    public TimeSpan? MinDelay { get; set; }

    /// <summary>Gets or sets the longest adaptive delay. Default: 1 s. Valid: 0 to 10 min.</summary>
    public TimeSpan? MaxDelay { get; set; }

    /// <summary>
    /// Gets or sets the hedge budget as a percentage of hedgeable requests: over a rolling 10 s window, hedges may add at
    /// most this much load, plus <see cref="BudgetMinPerSecond"/>. Default: 10. Valid: 0 to 100.
    /// </summary>
    public int? BudgetPercent { get; set; }

    /// <summary>Gets or sets the hedges per second the budget always allows (for services with little traffic). Default: 1. Valid: 0 to 100000.</summary>
    public int? BudgetMinPerSecond { get; set; }
}
