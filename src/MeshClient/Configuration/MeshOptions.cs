using MeshClient.Balancing;
using MeshClient.Resilience;
using MeshClient.Security;

namespace MeshClient.Configuration;

/// <summary>
/// Options of the mesh, bound from the <c>Mesh</c> configuration section by
/// <c>AddMesh()</c>. Every value has a default; invalid values fail at start-up with an
/// <see cref="Microsoft.Extensions.Options.OptionsValidationException"/> that names the configuration key.
/// </summary>
public sealed class MeshOptions
{
    /// <summary>The environment variable that gives the caller's zone when <see cref="Zone"/> is not configured.</summary>
    internal const string ZoneEnvironmentVariable = "MESH_ZONE";

    /// <summary>The longest zone name accepted.</summary>
    internal const int MaxZoneLength = 128;

    /// <summary>
    /// Gets or sets a value indicating whether every client created by <c>IHttpClientFactory</c> is mesh-enabled.
    /// When <see langword="false"/>, a client opts in with <c>IHttpClientBuilder.AddMesh()</c>. Default: <see langword="true"/>.
    /// </summary>
    public bool ApplyToAllHttpClients { get; set; } = true;

    /// <summary>
    /// Gets or sets a value indicating whether mesh clients keep the resilience handlers of
    /// Microsoft.Extensions.Http.Resilience (<c>AddStandardResilienceHandler()</c>, <c>AddStandardHedgingHandler()</c>,
    /// <c>AddResilienceHandler(...)</c>, for instance from Aspire's ServiceDefaults through
    /// <c>ConfigureHttpClientDefaults</c>). By default they are taken out of mesh clients, with warning 13 once per
    /// client: around the mesh's own retries they retry calls the mesh has already retried (4 endpoints answering 503
    /// cost 12 attempts instead of 3), and their circuit breaker opens for the whole service on one bad endpoint.
    /// Default: <see langword="false"/>.
    /// </summary>
    public bool KeepOtherResilienceHandlers { get; set; }

    /// <summary>
    /// Gets or sets the load-balancing policy used by services that do not name their own:
    /// one of <see cref="LoadBalancerNames.PeakEwma"/> (default), <see cref="LoadBalancerNames.LeastRequest"/>,
    /// <see cref="LoadBalancerNames.RoundRobin"/>, <see cref="LoadBalancerNames.Random"/> or
    /// <see cref="LoadBalancerNames.WeightedRoundRobin"/> (case-insensitive).
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
    /// Gets the slow start of every service (<c>Mesh:SlowStart</c>): a new or readmitted endpoint's weight ramps up
    /// over a window. Default: off.
    /// </summary>
    public SlowStartOptions SlowStart { get; } = new();

    /// <summary>
    /// Gets or sets the zone the caller runs in (<c>Mesh:Zone</c>, for example <c>eu-west-1a</c>); when unset, the
    /// <c>MESH_ZONE</c> environment variable. Endpoints in this zone (their <c>Zone</c>, or the Kubernetes
    /// <c>hints.forZones</c> when an EndpointSlice gives them) are preferred while they are healthy and not slower
    /// than the others (<see cref="ZoneRouting"/>). Default: none (no zone routing).
    /// </summary>
    public string? Zone { get; set; }

    /// <summary>
    /// Gets the zone routing of every service (<c>Mesh:ZoneRouting</c>): on by default when <see cref="Zone"/> is
    /// set; a service overrides it with <c>Mesh:Services:{name}:ZoneRouting</c>.
    /// </summary>
    public ZoneRoutingOptions ZoneRouting { get; } = new();

    /// <summary>
    /// Gets the deadline propagation of every service (<c>Mesh:Deadlines</c>): calls made while a deadline is current
    /// (<see cref="MeshDeadline"/>) are bounded by it and send it on. Default: on.
    /// </summary>
    public MeshDeadlineOptions Deadlines { get; } = new();

    /// <summary>
    /// Gets the tuning of the <see cref="LoadBalancerNames.WeightedRoundRobin"/> policy for every service
    /// (<c>Mesh:WeightedRoundRobin</c>).
    /// </summary>
    public WeightedRoundRobinOptions WeightedRoundRobin { get; } = new();

    /// <summary>
    /// Gets the TLS of calls to mesh endpoints (<c>Mesh:Tls</c>): the CA bundle trusted for them, the client
    /// certificate presented to them (mTLS) and the server name expected; a service overrides any of them with
    /// <c>Mesh:Services:{name}:Tls</c>. Default: none (the platform's TLS).
    /// </summary>
    public MeshTlsOptions Tls { get; } = new();

    /// <summary>
    /// Gets the networks, in CIDR notation (<c>10.0.0.0/8</c>, <c>fd00::/8</c>; a bare address is a single host), that
    /// discovered endpoints may be in (<c>Mesh:AllowedNetworks</c>). An endpoint whose IP address is outside every one
    /// is dropped when the endpoint set is built, with a warning, so that a compromised or mistaken discovery source
    /// cannot send requests (and their credentials) to, for example, a cloud metadata address. IPv4-mapped IPv6
    /// addresses are checked as IPv4. When set, an endpoint named by a host name is kept only when
    /// <see cref="AllowedHostNames"/> lists it. Default: empty, every endpoint is allowed.
    /// </summary>
    public IList<string> AllowedNetworks { get; } = new List<string>();

    /// <summary>
    /// Gets the host names that discovered endpoints may have when <see cref="AllowedNetworks"/> is set
    /// (<c>Mesh:AllowedHostNames</c>): exact names (case-insensitive), or <c>*.example.internal</c> for any name below
    /// a domain. Names are matched as written and never resolved: an address looked up now could differ from the one
    /// the connection later uses (DNS rebinding), so only an explicit list of trusted names is safe. Default: empty.
    /// </summary>
    public IList<string> AllowedHostNames { get; } = new List<string>();

    /// <summary>
    /// Gets what the configuration binder could not convert (a weight of <c>"ten"</c>, a port-sized number that
    /// overflows an <see cref="int"/>), each message naming its key; reported by validation as an
    /// <see cref="Microsoft.Extensions.Options.OptionsValidationException"/> like every other invalid value.
    /// </summary>
    internal List<string> BindingErrors { get; } = [];

    /// <summary>
    /// Fills <see cref="Zone"/> from the <c>MESH_ZONE</c> environment variable (read through <paramref name="environment"/>)
    /// when configuration left it unset or empty.
    /// </summary>
    internal void ApplyZoneFromEnvironment(Func<string, string?> environment)
    {
        if (!string.IsNullOrEmpty(Zone))
        {
            return;
        }

        var zone = environment(ZoneEnvironmentVariable);
        Zone = string.IsNullOrWhiteSpace(zone) ? null : zone;
        ZoneFromEnvironment = Zone is not null;
    }

    /// <summary>Gets or sets a value indicating whether <see cref="Zone"/> came from the <c>MESH_ZONE</c> environment variable (for messages).</summary>
    internal bool ZoneFromEnvironment { get; set; }

    /// <summary>
    /// Gets the sections of optional builders that are configured but not read because their builder was not added
    /// (<c>Mesh:Consul</c> without <c>AddConsul()</c>), with that builder; reported by warning 14.
    /// </summary>
    internal List<(string Path, string Builder)> IgnoredSections { get; } = [];
}
