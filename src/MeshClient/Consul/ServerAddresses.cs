using System.Diagnostics.CodeAnalysis;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;

namespace MeshClient.Consul;

/// <summary>
/// Reads the addresses the host's HTTP server listens on, for self-registration. The mesh does not reference
/// ASP.NET Core (it serves console apps and workers too), so the server is found by its well-known type names:
/// <c>IServer.Features</c> (an <see cref="IFeatureCollection"/>, a type both share) holds
/// <c>IServerAddressesFeature.Addresses</c>. Falls back to the <c>urls</c> / <c>http_ports</c> configuration keys.
/// </summary>
internal static class ServerAddresses
{
    private const string ServerTypeName = "Microsoft.AspNetCore.Hosting.Server.IServer, Microsoft.AspNetCore.Hosting.Server.Abstractions";
    private const string AddressesFeatureTypeName = "Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature";

    [UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "IServer.Features and IServerAddressesFeature.Addresses are kept by the DynamicDependency attributes; when ASP.NET Core is absent or trimmed away, no address is found and the configured port is required.")]
    [DynamicDependency(DynamicallyAccessedMemberTypes.PublicProperties, "Microsoft.AspNetCore.Hosting.Server.IServer", "Microsoft.AspNetCore.Hosting.Server.Abstractions")]
    [DynamicDependency(DynamicallyAccessedMemberTypes.PublicProperties, "Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature", "Microsoft.AspNetCore.Hosting.Server.Abstractions")]
    public static IReadOnlyList<string> Read(IServiceProvider services)
    {
        var result = new List<string>();
        try
        {
            var serverType = Type.GetType(ServerTypeName, throwOnError: false);
            if (serverType is not null
                && services.GetService(serverType) is { } server
                && serverType.GetProperty("Features")?.GetValue(server) is IFeatureCollection features)
            {
                foreach (var (type, feature) in features)
                {
                    if (type.FullName == AddressesFeatureTypeName
                        && type.GetProperty("Addresses")?.GetValue(feature) is IEnumerable<string> addresses)
                    {
                        result.AddRange(addresses);
                    }
                }
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.Reflection.TargetInvocationException or NotSupportedException)
        {
            // No server, or one that cannot tell: fall back to configuration.
        }

        if (result.Count == 0 && services.GetService(typeof(IConfiguration)) is IConfiguration configuration)
        {
            if (configuration["urls"] is { Length: > 0 } urls)
            {
                result.AddRange(urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            }
            else if (configuration["http_ports"] is { Length: > 0 } ports)
            {
                foreach (var port in ports.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    result.Add("http://*:" + port);
                }
            }
        }

        return result;
    }
}
