namespace MeshClient.Configuration;

/// <summary>
/// Slow start (Envoy's <c>slow_start_config</c>, Istio's <c>warmupDurationSecs</c>), bound from <c>Mesh:SlowStart</c>
/// (every service) and <c>Mesh:Services:{name}:SlowStart</c> (one service; a value left unset takes the global one).
/// An endpoint that joins a service already in use, or comes back after an ejection, starts with a fraction of its
/// weight that grows to all of it over <see cref="Window"/>: a freshly started .NET process (cold JIT, empty caches
/// and connection pools) is not handed a full share of traffic in its first seconds.
/// The weight used is <c>weight × max(MinWeightPercent / 100, (max(t, 1 s) / Window)^(1 / Aggression))</c> after
/// <c>t</c> in slow start. It applies to every load-balancing policy (the draws of the P2C policies, the round-robin
/// order, the random draw). Endpoints found when a service is first resolved do not take part: they all start
/// together. Default: off.
/// </summary>
public sealed class SlowStartOptions
{
    /// <summary>Gets the default <see cref="Aggression"/>: 1.0, a linear ramp.</summary>
    public const double DefaultAggression = 1.0;

    /// <summary>Gets the default <see cref="MinWeightPercent"/>: 10 (Envoy).</summary>
    public const int DefaultMinWeightPercent = 10;

    /// <summary>
    /// Gets or sets how long an endpoint takes to reach its full weight. Default: zero, slow start off.
    /// Valid: 0, or 1 s to 1 h.
    /// </summary>
    public TimeSpan? Window { get; set; }

    /// <summary>
    /// Gets or sets the shape of the ramp: 1.0 is linear; above 1 the weight grows fast at first, below 1 slowly at
    /// first. Default: 1.0. Valid: 0.1 to 10.
    /// </summary>
    public double? Aggression { get; set; }

    /// <summary>
    /// Gets or sets the smallest share of its weight an endpoint in slow start gets, in percent. Default: 10.
    /// Valid: 1 to 100.
    /// </summary>
    public int? MinWeightPercent { get; set; }
}
