using System.Diagnostics.CodeAnalysis;

namespace MeshClient.Handlers;

/// <summary>Which request hosts the mesh leaves alone.</summary>
internal static class MeshHosts
{
    /// <summary>
    /// A relative URI, an IP literal or a loopback name (<c>localhost</c>) passes through with no lookup and no mesh
    /// work; every other host is looked up as a service.
    /// </summary>
    public static bool IsPassThrough([NotNullWhen(false)] Uri? uri) =>
        uri is null || !uri.IsAbsoluteUri || uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6 || uri.IsLoopback;
}
