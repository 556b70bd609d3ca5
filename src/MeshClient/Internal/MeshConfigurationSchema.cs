using static MeshClient.Internal.ConfigurationSchema;

namespace MeshClient.Internal;

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
        ("TotalTimeout", Value));

    private static readonly ConfigurationSchema SlowStart = Object(("Window", Value), ("Aggression", Value), ("MinWeightPercent", Value));

    private static readonly ConfigurationSchema Tls = Object(
        ("CaCertificateFile", Value),
        ("TrustSystemCertificates", Value),
        ("ClientCertificateFile", Value),
        ("ClientKeyFile", Value),
        ("ServerName", Value),
        ("ReloadInterval", Value));

    private static readonly ConfigurationSchema Endpoint = Object(("Address", Value), ("Weight", Value), ("Zone", Value), ("HostName", Value));

    private static readonly ConfigurationSchema Service = Object(
        ("LoadBalancer", Value),
        ("Endpoints", Collection(Endpoint)),
        ("Resilience", Resilience),
        ("SlowStart", SlowStart),
        ("Tls", Tls));

    /// <summary>Gets the keys of <see cref="MeshOptions"/>.</summary>
    public static ConfigurationSchema Mesh { get; } = Object(
        ("ApplyToAllHttpClients", Value),
        ("KeepOtherResilienceHandlers", Value),
        ("LoadBalancer", Value),
        ("Services", Collection(Service)),
        ("Resilience", Resilience),
        ("PeakEwma", Object(("DecayTime", Value), ("DefaultRtt", Value), ("FailurePenalty", Value))),
        ("SlowStart", SlowStart),
        ("Tls", Tls),
        ("AllowedNetworks", Collection(Value)),
        ("AllowedHostNames", Collection(Value)));

    /// <summary>Gets the keys of <c>Mesh:Consul</c> (<see cref="Consul.ConsulOptions"/>), registered by <c>AddConsul()</c>.</summary>
    public static ConfigurationSchema Consul { get; } = Object(
        ("Address", Value),
        ("Token", Value),
        ("Datacenter", Value),
        ("Tags", Collection(Value)),
        ("OnlyPassing", Value),
        ("Namespace", Value),
        ("Partition", Value),
        ("Scheme", Value),
        ("SchemeMetaKey", Value),
        ("ZoneMetaKey", Value),
        ("Wait", Value),
        ("RequestTimeout", Value),
        ("RetryBaseDelay", Value),
        ("RetryMaxDelay", Value),
        ("WatchIdleTimeout", Value),
        ("MaxResponseBytes", Value),
        ("CaCertificateFile", Value),
        ("ClientCertificateFile", Value),
        ("ClientKeyFile", Value),
        ("Registration", Object(
            ("Enabled", Value),
            ("ServiceName", Value),
            ("ServiceId", Value),
            ("Address", Value),
            ("Port", Value),
            ("Scheme", Value),
            ("Tags", Collection(Value)),
            ("Meta", Collection(Value)),
            ("Weight", Value),
            ("WarningWeight", Value),
            ("HealthCheckPath", Value),
            ("Ttl", Value),
            ("CheckInterval", Value),
            ("CheckTimeout", Value),
            ("DeregisterCriticalServiceAfter", Value))));

    /// <summary>Gets the keys of <c>Mesh:Kubernetes</c> (<see cref="Kubernetes.KubernetesOptions"/>), registered by <c>AddKubernetes()</c>.</summary>
    public static ConfigurationSchema Kubernetes { get; } = Object(
        ("Namespace", Value),
        ("ClusterDomain", Value),
        ("KubeConfigPath", Value),
        ("Context", Value),
        ("Services", Collection(Object(("PortName", Value)))),
        ("RequestTimeout", Value),
        ("WatchTimeout", Value),
        ("RetryBaseDelay", Value),
        ("RetryMaxDelay", Value),
        ("WatchIdleTimeout", Value),
        ("MaxResponseBytes", Value));
}
