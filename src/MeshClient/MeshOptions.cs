using MeshClient.Balancing;
using MeshClient.Resilience;

namespace MeshClient;

/// <summary>
/// Options of the mesh, bound from the <c>Mesh</c> configuration section by
/// <c>AddMesh()</c>. Every value has a default; invalid values fail at start-up with an
/// <see cref="Microsoft.Extensions.Options.OptionsValidationException"/> that names the configuration key.
/// </summary>
public sealed class MeshOptions
{
    /// <summary>
    /// Gets or sets a value indicating whether every client created by <c>IHttpClientFactory</c> is mesh-enabled.
    /// When <see langword="false"/>, a client opts in with <c>IHttpClientBuilder.AddMesh()</c>. Default: <see langword="true"/>.
    /// </summary>
    public bool ApplyToAllHttpClients { get; set; } = true;

    /// <summary>
    /// Gets or sets the load-balancing policy used by services that do not name their own:
    /// one of <see cref="LoadBalancerNames.PeakEwma"/> (default), <see cref="LoadBalancerNames.LeastRequest"/>,
    /// <see cref="LoadBalancerNames.RoundRobin"/> or <see cref="LoadBalancerNames.Random"/> (case-insensitive).
    /// </summary>
    public string LoadBalancer { get; set; } = LoadBalancerNames.PeakEwma;

    /// <summary>
    /// Gets the services known to the mesh through configuration, keyed by service name (case-insensitive).
    /// A service listed here with endpoints is discovered from them; a service listed without endpoints only
    /// carries per-service settings and is discovered by the other providers (standard configuration, Consul).
    /// </summary>
    public IDictionary<string, MeshServiceOptions> Services { get; } =
        new Dictionary<string, MeshServiceOptions>(StringComparer.OrdinalIgnoreCase);

    /// <summary>Gets the outlier detection, retry and timeout settings of every service (<c>Mesh:Resilience</c>).</summary>
    public MeshResilienceOptions Resilience { get; } = new();

    /// <summary>Gets the tuning of the peak-EWMA load balancer.</summary>
    public PeakEwmaOptions PeakEwma { get; } = new();

    /// <summary>
    /// Gets what the configuration binder could not convert (a weight of <c>"ten"</c>, a port-sized number that
    /// overflows an <see cref="int"/>), each message naming its key; reported by validation as an
    /// <see cref="Microsoft.Extensions.Options.OptionsValidationException"/> like every other invalid value.
    /// </summary>
    internal List<string> BindingErrors { get; } = [];
}
