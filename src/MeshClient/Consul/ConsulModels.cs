using System.Text.Json.Serialization;

namespace MeshClient.Consul;

// The wire shapes of the Consul HTTP API (reference/consul-http-api.md §1.3, §3, §4). Only the fields the mesh reads
// or writes are declared: unknown fields are skipped, every field may be missing, and property names match
// case-insensitively (the docs samples write "address"/"port" inside TaggedAddresses where agents write
// "Address"/"Port").

/// <summary>One entry of <c>GET /v1/health/service/{name}</c> (<c>CheckServiceNode</c>).</summary>
internal sealed class ConsulHealthServiceEntry
{
    public ConsulNode? Node { get; set; }

    public ConsulService? Service { get; set; }

    public List<ConsulHealthCheck>? Checks { get; set; }
}

/// <summary>A catalog node.</summary>
internal sealed class ConsulNode
{
    [JsonPropertyName("ID")]
    public string? Id { get; set; }

    public string? Node { get; set; }

    public string? Address { get; set; }

    public string? Datacenter { get; set; }

    public Dictionary<string, string>? TaggedAddresses { get; set; }

    public Dictionary<string, string>? Meta { get; set; }

    /// <summary>Gets or sets the node's locality (Consul 1.17+, the agent's <c>locality</c> setting; omitted when unset).</summary>
    public ConsulLocality? Locality { get; set; }

    public ulong CreateIndex { get; set; }

    public ulong ModifyIndex { get; set; }
}

/// <summary>A locality (Consul 1.17+): <c>{"Region": …, "Zone": …}</c>, on a node or a service instance.</summary>
internal sealed class ConsulLocality
{
    public string? Region { get; set; }

    public string? Zone { get; set; }
}

/// <summary>A service instance (<c>NodeService</c>, also the shape of <c>GET /v1/agent/services</c> values).</summary>
internal sealed class ConsulService
{
    public string? Kind { get; set; }

    [JsonPropertyName("ID")]
    public string? Id { get; set; }

    public string? Service { get; set; }

    public List<string>? Tags { get; set; }

    public string? Address { get; set; }

    public Dictionary<string, ConsulServiceAddress>? TaggedAddresses { get; set; }

    public Dictionary<string, string>? Meta { get; set; }

    public int Port { get; set; }

    /// <summary>Gets or sets the instance's locality (Consul 1.17+; omitted when unset).</summary>
    public ConsulLocality? Locality { get; set; }

    public ConsulWeights? Weights { get; set; }

    public bool EnableTagOverride { get; set; }

    public string? Datacenter { get; set; }

    public string? Namespace { get; set; }

    public string? Partition { get; set; }

    public string? PeerName { get; set; }

    public ulong CreateIndex { get; set; }

    public ulong ModifyIndex { get; set; }
}

/// <summary>A tagged address of a service: <c>{"Address": …, "Port": …}</c> (either casing).</summary>
internal sealed class ConsulServiceAddress
{
    public string? Address { get; set; }

    public int Port { get; set; }
}

/// <summary>The weights of a service; Consul's default is <c>{1, 1}</c>.</summary>
internal sealed class ConsulWeights
{
    public int Passing { get; set; } = 1;

    public int Warning { get; set; } = 1;
}

/// <summary>A health check of a node or service.</summary>
internal sealed class ConsulHealthCheck
{
    public string? Node { get; set; }

    [JsonPropertyName("CheckID")]
    public string? CheckId { get; set; }

    public string? Name { get; set; }

    public string? Status { get; set; }

    public string? Notes { get; set; }

    public string? Output { get; set; }

    [JsonPropertyName("ServiceID")]
    public string? ServiceId { get; set; }

    public string? ServiceName { get; set; }

    public List<string>? ServiceTags { get; set; }

    public string? Type { get; set; }

    public string? Interval { get; set; }

    public string? Timeout { get; set; }

    public ulong CreateIndex { get; set; }

    public ulong ModifyIndex { get; set; }
}

/// <summary>One entry of <c>GET /v1/catalog/service/{name}</c> (flat <c>ServiceNode</c>).</summary>
internal sealed class ConsulCatalogServiceEntry
{
    [JsonPropertyName("ID")]
    public string? Id { get; set; }

    public string? Node { get; set; }

    public string? Address { get; set; }

    public string? Datacenter { get; set; }

    public Dictionary<string, string>? TaggedAddresses { get; set; }

    public Dictionary<string, string>? NodeMeta { get; set; }

    public string? ServiceKind { get; set; }

    [JsonPropertyName("ServiceID")]
    public string? ServiceId { get; set; }

    public string? ServiceName { get; set; }

    public List<string>? ServiceTags { get; set; }

    public string? ServiceAddress { get; set; }

    public Dictionary<string, ConsulServiceAddress>? ServiceTaggedAddresses { get; set; }

    public ConsulWeights? ServiceWeights { get; set; }

    public Dictionary<string, string>? ServiceMeta { get; set; }

    public int ServicePort { get; set; }

    public bool ServiceEnableTagOverride { get; set; }

    public ulong CreateIndex { get; set; }

    public ulong ModifyIndex { get; set; }
}

/// <summary>The body of <c>PUT /v1/agent/service/register</c>.</summary>
internal sealed class ConsulServiceRegistration
{
    [JsonPropertyName("ID")]
    public string? Id { get; set; }

    public string? Name { get; set; }

    public List<string>? Tags { get; set; }

    public string? Address { get; set; }

    public int? Port { get; set; }

    public Dictionary<string, string>? Meta { get; set; }

    public bool EnableTagOverride { get; set; }

    public ConsulAgentCheck? Check { get; set; }

    public ConsulWeights? Weights { get; set; }
}

/// <summary>A check in a registration body. Durations are Go duration strings such as <c>10s</c>.</summary>
internal sealed class ConsulAgentCheck
{
    [JsonPropertyName("CheckID")]
    public string? CheckId { get; set; }

    public string? Name { get; set; }

    [JsonPropertyName("HTTP")]
    public string? Http { get; set; }

    public string? Method { get; set; }

    [JsonPropertyName("TTL")]
    public string? Ttl { get; set; }

    public string? Interval { get; set; }

    public string? Timeout { get; set; }

    public List<string>? Args { get; set; }

    public string? Status { get; set; }

    public string? Notes { get; set; }

    public string? DeregisterCriticalServiceAfter { get; set; }
}

/// <summary>The body of <c>PUT /v1/agent/check/update/{id}</c>.</summary>
internal sealed class ConsulCheckUpdate
{
    public string? Status { get; set; }

    public string? Output { get; set; }
}

/// <summary>
/// The System.Text.Json source-generated context of every Consul shape (the library is AOT-compatible: no
/// reflection-based serialization). Tolerant on read: case-insensitive names, unknown fields skipped.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNameCaseInsensitive = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Disallow)]
[JsonSerializable(typeof(ConsulHealthServiceEntry[]))]
[JsonSerializable(typeof(ConsulCatalogServiceEntry[]))]
[JsonSerializable(typeof(Dictionary<string, List<string>>))]
[JsonSerializable(typeof(Dictionary<string, ConsulService>))]
[JsonSerializable(typeof(ConsulService))]
[JsonSerializable(typeof(ConsulServiceRegistration))]
[JsonSerializable(typeof(ConsulCheckUpdate))]
internal sealed partial class ConsulJsonContext : JsonSerializerContext;
