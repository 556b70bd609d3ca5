namespace MeshClient.Consul;

/// <summary>
/// Self-registration of the running service in Consul (<c>Mesh:Consul:Registration</c>): registered once the host
/// has started, kept registered (a TTL check is heartbeated; the service is registered again when the agent forgot
/// it), retried while Consul is down, and deregistered on graceful shutdown.
/// </summary>
public sealed class ConsulRegistrationOptions
{
    /// <summary>Gets or sets a value indicating whether the service registers itself. Default: <see langword="false"/>.</summary>
    public bool Enabled { get; set; }

    /// <summary>Gets or sets the service name. Default: the application name of the host environment.</summary>
    public string? ServiceName { get; set; }

    /// <summary>Gets or sets the instance id, unique on the agent. Default: <c>{name}-{host name}-{port}</c>.</summary>
    public string? ServiceId { get; set; }

    /// <summary>
    /// Gets or sets the address other services call, which the HTTP check probes too. Default: the address the server
    /// listens on when it is a specific IP; listening on a wildcard or a host name, the host's primary address (the
    /// local address of its default route, else its first non-loopback interface address); none on a host with
    /// nothing but loopback (Consul then uses the agent's node address, and the check probes 127.0.0.1).
    /// </summary>
    public string? Address { get; set; }

    /// <summary>Gets or sets the port other services call. Default: discovered from the server's listening addresses.</summary>
    public int? Port { get; set; }

    /// <summary>
    /// Gets or sets the scheme of the service (<c>http</c> or <c>https</c>), used for the HTTP check and, when
    /// <c>https</c>, announced to callers in <c>Meta</c>. Default: the scheme of the server's listening address.
    /// </summary>
    public string? Scheme { get; set; }

    /// <summary>Gets the tags to register.</summary>
    public IList<string> Tags { get; } = new List<string>();

    /// <summary>Gets the metadata to register (<c>Service.Meta</c>).</summary>
    public IDictionary<string, string> Meta { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Gets or sets the weight while passing (<c>Weights.Passing</c>), from 1 to 65535. Default: 1.</summary>
    public int Weight { get; set; } = 1;

    /// <summary>Gets or sets the weight while in warning (<c>Weights.Warning</c>), from 0 to 65535. Default: 1.</summary>
    public int WarningWeight { get; set; } = 1;

    /// <summary>
    /// Gets or sets the path of an HTTP health endpoint (for example <c>/health</c>) that Consul calls every
    /// <see cref="CheckInterval"/>. When not set, the service registers a TTL check that the library heartbeats.
    /// </summary>
    public string? HealthCheckPath { get; set; }

    /// <summary>
    /// Gets or sets the TTL of the TTL check (used when <see cref="HealthCheckPath"/> is not set); the library
    /// heartbeats it every third of the TTL. Default: 30 seconds.
    /// </summary>
    public TimeSpan Ttl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets how often Consul runs the HTTP check. Default: 10 seconds.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets the timeout of the HTTP check. Default: 5 seconds.</summary>
    public TimeSpan CheckTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Gets or sets after how long in the critical state Consul deregisters the service by itself (Consul applies
    /// at least one minute). Default: not set (never).
    /// </summary>
    public TimeSpan? DeregisterCriticalServiceAfter { get; set; }
}
