using MeshClient.Configuration;
using static MeshClient.Configuration.ConfigurationSchema;

namespace MeshClient.Consul;

/// <summary>The keys of the provider's configuration subsection, checked with the mesh's (unknown keys refused).</summary>
internal static class ConsulConfigurationSchema
{
    /// <summary>Gets the keys of <c>Mesh:Consul</c> (<see cref="ConsulOptions"/>), registered by <c>AddConsul()</c>.</summary>
    public static ConfigurationSchema Keys { get; } = Object(
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
}
