using MeshClient.Configuration;
using static MeshClient.Configuration.ConfigurationSchema;

namespace MeshClient.Kubernetes;

/// <summary>The keys of the provider's configuration subsection, checked with the mesh's (unknown keys refused).</summary>
internal static class KubernetesConfigurationSchema
{
    /// <summary>Gets the keys of <c>Mesh:Kubernetes</c> (<see cref="KubernetesOptions"/>), registered by <c>AddKubernetes()</c>.</summary>
    public static ConfigurationSchema Keys { get; } = Object(
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
