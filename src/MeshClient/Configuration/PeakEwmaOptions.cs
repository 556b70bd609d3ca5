namespace MeshClient.Configuration;

/// <summary>
/// Tuning of the <see cref="LoadBalancerNames.PeakEwma"/> policy, bound from <c>Mesh:PeakEwma</c>.
/// The defaults follow Finagle and Linkerd.
/// </summary>
public sealed class PeakEwmaOptions
{
    /// <summary>
    /// Gets or sets the decay time of the latency average: a sample older than this weighs 1/e.
    /// Default: 10 seconds. Valid: 100 ms to 10 minutes.
    /// </summary>
    public TimeSpan DecayTime { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Gets or sets the latency assumed for an endpoint not measured yet while it has an attempt in flight (idle, such
    /// an endpoint costs nothing, so it is tried at once). Default: 30 ms (Linkerd). Valid: 1 ms to 1 minute.
    /// </summary>
    public TimeSpan DefaultRtt { get; set; } = TimeSpan.FromMilliseconds(30);

    /// <summary>
    /// Gets or sets the latency recorded for a failed attempt (5xx, 429, connection error), so that an endpoint
    /// that fails fast does not look fast (Linkerd's load biaser). Zero disables the penalty. Default: 1 second.
    /// Valid: 0 to 1 minute.
    /// </summary>
    public TimeSpan FailurePenalty { get; set; } = TimeSpan.FromSeconds(1);
}
