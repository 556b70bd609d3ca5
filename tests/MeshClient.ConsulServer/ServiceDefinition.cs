namespace MeshClient.ConsulServer;

/// <summary>A service registration, as <c>PUT /v1/agent/service/register</c> reads it (or as a test passes it directly).</summary>
public sealed class ServiceDefinition
{
    public string? Id { get; set; }

    public required string Name { get; set; }

    public List<string> Tags { get; set; } = [];

    public string? Address { get; set; }

    public int Port { get; set; }

    /// <summary>Gets or sets the metadata; <see langword="null"/> (none registered) is emitted as <c>"Meta": null</c> by health reads.</summary>
    public Dictionary<string, string>? Meta { get; set; }

    public int? WeightPassing { get; set; }

    public int? WeightWarning { get; set; }

    public Dictionary<string, (string Address, int Port)> TaggedAddresses { get; set; } = new(StringComparer.Ordinal);

    public bool EnableTagOverride { get; set; }

    public string Kind { get; set; } = string.Empty;

    public List<CheckDefinition> Checks { get; set; } = [];
}

/// <summary>A check of a registration.</summary>
public sealed class CheckDefinition
{
    public string? CheckId { get; set; }

    public string? Name { get; set; }

    /// <summary>Gets or sets the URL of an HTTP check, which the server runs every <see cref="Interval"/>.</summary>
    public string? Http { get; set; }

    public string Method { get; set; } = "GET";

    public TimeSpan Interval { get; set; }

    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets the TTL of a TTL check: critical ("TTL expired") unless updated in time.</summary>
    public TimeSpan Ttl { get; set; }

    /// <summary>Gets or sets the type of a check the server does not run (script, tcp, grpc…): it keeps its status.</summary>
    public string? OtherType { get; set; }

    /// <summary>Gets or sets the initial status; Consul's default is critical.</summary>
    public string? Status { get; set; }

    public string Notes { get; set; } = string.Empty;

    public TimeSpan? DeregisterCriticalServiceAfter { get; set; }
}
