using static MeshClient.Configuration.ConfigurationSchema;

namespace MeshClient.Configuration;

/// <summary>
/// Every key of the <c>Mesh</c> section, mirroring the options classes (a test holds the two together), so that an
/// unknown key is refused at start-up and on reload, naming it.
/// </summary>
internal static class MeshConfigurationSchema
{
    /// <summary>
    /// Sections of optional builders: accepted (with warning 14) when their builder was not added, since the same
    /// configuration often serves apps that add it and apps that do not; checked key by key when it was.
    /// </summary>
    public static IReadOnlyList<string> OptionalSections { get; } = ["Consul", "Kubernetes"];

    private static readonly ConfigurationSchema Hedging = Object(
        ("Enabled", Value),
        ("Delay", Value),
        ("MaxAttempts", Value),
        ("Percentile", Value),
        ("MinDelay", Value),
        ("MaxDelay", Value),
        ("BudgetPercent", Value),
        ("BudgetMinPerSecond", Value));

    private static readonly ConfigurationSchema Resilience = Object(
        ("ConsecutiveFailures", Value),
        ("FailurePercentageThreshold", Value),
        ("FailurePercentageMinimumRequests", Value),
        ("FailurePercentageWindow", Value),
        ("BaseEjectionTime", Value),
        ("UnreachableEjectionTime", Value),
        ("MaxEjectionTime", Value),
        ("MaxEjectionPercent", Value),
        ("PanicThresholdPercent", Value),
        ("MaxRetries", Value),
        ("RetryBaseDelay", Value),
        ("RetryMaxDelay", Value),
        ("RetryBudgetPercent", Value),
        ("RetryBudgetMinPerSecond", Value),
        ("RetryBudgetWindow", Value),
        ("RetryNonIdempotent", Value),
        ("AttemptTimeout", Value),
        ("ConnectTimeout", Value),
        ("TotalTimeout", Value),
        ("Hedging", Hedging));

    private static readonly ConfigurationSchema SlowStart = Object(("Window", Value), ("Aggression", Value), ("MinWeightPercent", Value));

    private static readonly ConfigurationSchema ZoneRouting = Object(("Enabled", Value), ("SpillStartRatio", Value), ("SpillFullRatio", Value));

    private static readonly ConfigurationSchema Deadlines = Object(("Propagate", Value));
    private static readonly ConfigurationSchema WeightedRoundRobin = Object(
        ("BlackoutPeriod", Value),
        ("WeightExpirationPeriod", Value),
        ("WeightUpdatePeriod", Value),
        ("ErrorUtilizationPenalty", Value));

    private static readonly ConfigurationSchema Tls = Object(
        ("CaCertificateFile", Value),
        ("TrustSystemCertificates", Value),
        ("ClientCertificateFile", Value),
        ("ClientKeyFile", Value),
        ("ServerName", Value),
        ("ReloadInterval", Value));

    private static readonly ConfigurationSchema Endpoint = Object(("Address", Value), ("Weight", Value), ("Zone", Value), ("HostName", Value));

    private static readonly ConfigurationSchema Route = Object(
        ("Name", Value),
        ("Match", Object(("PathPrefix", Value), ("Path", Value), ("Method", Value), ("Headers", Collection(Value)))),
        ("Backends", Collection(Object(("Service", Value), ("Weight", Value)))),
        ("Timeout", Value),
        ("Hedging", Hedging));

    private static readonly ConfigurationSchema Service = Object(
        ("LoadBalancer", Value),
        ("Endpoints", Collection(Endpoint)),
        ("Resilience", Resilience),
        ("SlowStart", SlowStart),
        ("ZoneRouting", ZoneRouting),
        ("Deadlines", Deadlines),
        ("WeightedRoundRobin", WeightedRoundRobin),
        ("Tls", Tls),
        ("Routes", Collection(Route)));

    /// <summary>Gets the keys of <see cref="MeshOptions"/>.</summary>
    public static ConfigurationSchema Mesh { get; } = Object(
        ("ApplyToAllHttpClients", Value),
        ("KeepOtherResilienceHandlers", Value),
        ("LoadBalancer", Value),
        ("Services", Collection(Service)),
        ("Resilience", Resilience),
        ("PeakEwma", Object(("DecayTime", Value), ("DefaultRtt", Value), ("FailurePenalty", Value))),
        ("SlowStart", SlowStart),
        ("Zone", Value),
        ("ZoneRouting", ZoneRouting),
        ("Deadlines", Deadlines),
        ("WeightedRoundRobin", WeightedRoundRobin),
        ("Tls", Tls),
        ("AllowedNetworks", Collection(Value)),
        ("AllowedHostNames", Collection(Value)));

}
