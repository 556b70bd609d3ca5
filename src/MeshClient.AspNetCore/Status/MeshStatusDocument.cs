using System.Text.Json.Serialization;
using MeshClient.Resilience;

namespace MeshClient.AspNetCore.Status;

/// <summary>
/// The JSON of the status page, version 1 (documented in the README). A field may be added within a version; a
/// field renamed, removed or changed in meaning makes a new version.
/// </summary>
internal sealed record MeshStatusDocument(
    int Version,
    DateTimeOffset GeneratedAt,
    IReadOnlyList<ServiceDocument> Services)
{
    public const int CurrentVersion = 1;

    /// <summary>Gets the caller's zone (<c>Mesh:Zone</c> or <c>MESH_ZONE</c>), or <see langword="null"/>.</summary>
    public string? Zone { get; init; }
}

internal sealed record ServiceDocument(
    string Name,
    DiscoveryDocument Discovery,
    string LoadBalancer,
    bool Panic,
    RetryBudgetDocument? RetryBudget,
    IReadOnlyList<EndpointDocument> Endpoints,
    IReadOnlyList<RouteDocument> Routes)
{
    /// <summary>Gets the service's zone routing, or <see langword="null"/> when it is off for the service.</summary>
    public ZoneRoutingDocument? ZoneRouting { get; init; }

    /// <summary>Gets the service's hedging, or <see langword="null"/> when it does not hedge.</summary>
    public HedgingDocument? Hedging { get; init; }
}

internal sealed record HedgingDocument(
    double DelayMs,
    double? Percentile,
    int MaxAttempts,
    RetryBudgetDocument Budget);

internal sealed record ZoneRoutingDocument(
    string Zone,
    bool Active,
    double Spill,
    double? LocalShare,
    double? LocalLatencyMs,
    double? RemoteLatencyMs,
    double? LatencyRatio,
    int LocalEndpoints,
    int HealthyLocalEndpoints);

internal sealed record RouteDocument(
    string Name,
    string? Match,
    double? TimeoutSeconds,
    IReadOnlyList<RouteBackendDocument> Backends);

internal sealed record RouteBackendDocument(
    string Service,
    int Weight,
    double Share,
    string State);

internal sealed record DiscoveryDocument(
    string? Source,
    DateTimeOffset? LastUpdated,
    DateTimeOffset? LastRefreshed,
    string? Error);

internal sealed record RetryBudgetDocument(
    double WindowSeconds,
    int Requests,
    int Retries,
    double Allowed);

internal sealed record EndpointDocument(
    string Id,
    string Address,
    string? Zone,
    int Weight,
    double EffectiveWeight,
    int? SlowStartPercent,
    string State,
    double? EjectionSecondsLeft,
    double? LatencyMs,
    int InFlight,
    int RequestsLastMinute,
    int FailuresLastMinute,
    long Attempts)
{
    /// <summary>Gets <c>local</c> or <c>remote</c> while zone routing applies to the service, else <see langword="null"/>.</summary>
    public string? Locality { get; init; }
}

/// <summary>The source-generated serializer of <see cref="MeshStatusDocument"/> (trimming- and AOT-safe).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(MeshStatusDocument))]
internal sealed partial class MeshStatusJsonContext : JsonSerializerContext;
