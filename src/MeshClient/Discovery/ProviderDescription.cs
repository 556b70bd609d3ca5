using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Discovery;

/// <summary>Names the discovery providers for error messages (<c>UnknownServiceException</c>) without the balancer knowing them.</summary>
internal static class ProviderDescription
{
    /// <summary>The name of a provider: its own <c>ToString()</c> when it has one, else its type name shortened.</summary>
    /// <param name="factory">The provider's factory.</param>
    public static string Describe(IServiceEndpointProviderFactory factory)
    {
        if (factory is MeshConfigurationEndpointProviderFactory)
        {
            return MeshConfigurationEndpointProviderFactory.ProviderName;
        }

        var name = factory.ToString();
        var typeName = factory.GetType().Name;
        if (name is null || name == factory.GetType().FullName)
        {
            name = typeName switch
            {
                "ConfigurationServiceEndpointProviderFactory" => "configuration (Services)",
                "PassThroughServiceEndpointProviderFactory" => "pass-through",
                _ => typeName.Replace("ServiceEndpointProviderFactory", string.Empty, StringComparison.Ordinal),
            };
        }

        return name;
    }
}
