using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Model;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Balancing;

/// <summary>Turns what discovery returned into <see cref="EndpointEntry"/> values the balancer can send to.</summary>
internal static class EndpointEntryFactory
{
    /// <summary>Creates the entry of a discovered endpoint, or returns <see langword="null"/> for an unsupported one.</summary>
    public static EndpointEntry? Create(ServiceEndpoint endpoint, Func<string, EndpointState> getState) => Create(endpoint, getState, out _);

    /// <summary>
    /// Creates the entry of a discovered endpoint, or returns <see langword="null"/> with the reason in
    /// <paramref name="rejection"/> when it cannot take requests: a URI that is not absolute <c>http</c> or
    /// <c>https</c> with a host (<c>file:</c>, <c>ftp:</c>, <c>javascript:</c> …), a host that is not a host name or an
    /// IP address, a weight outside 1–65535, or an endpoint type the mesh does not know. An IPv6 zone id
    /// (<c>fe80::1%eth0</c>) is kept in the rewritten request URI.
    /// </summary>
    public static EndpointEntry? Create(ServiceEndpoint endpoint, Func<string, EndpointState> getState, out string? rejection)
    {
        var meta = endpoint.Features.Get<IMeshEndpointFeature>();
        var hostHeader = endpoint.Features.Get<IHostNameFeature>()?.HostName;
        string? scheme = null;
        string authority;
        var pathBase = string.Empty;
        switch (endpoint.EndPoint)
        {
            case UriEndPoint { Uri: var uri }:
                if (!uri.IsAbsoluteUri || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
                {
                    rejection = uri.IsAbsoluteUri
                        ? $"the scheme '{uri.Scheme}' is not http or https"
                        : "the address is not an absolute http or https URI";
                    return null;
                }

                if (string.IsNullOrEmpty(uri.Host))
                {
                    rejection = "the address has no host";
                    return null;
                }

                scheme = uri.Scheme;
                authority = FormatAuthority(uri); // host[:port], the port omitted when it is the scheme's default
                pathBase = uri.AbsolutePath.TrimEnd('/');
                break;
            case IPEndPoint ip:
                authority = FormatHost(ip.Address.AddressFamily == AddressFamily.InterNetworkV6 ? "[" + ip.Address + "]" : ip.Address.ToString(), ip.Port);
                break;
            case DnsEndPoint dns:
                if (IPAddress.TryParse(dns.Host, out var literal) && literal.AddressFamily == AddressFamily.InterNetworkV6 && !dns.Host.StartsWith('['))
                {
                    authority = FormatHost("[" + literal + "]", dns.Port);
                }
                else if (Uri.CheckHostName(dns.Host) is UriHostNameType.Dns or UriHostNameType.IPv4 or UriHostNameType.IPv6)
                {
                    authority = FormatHost(dns.Host, dns.Port);
                }
                else
                {
                    rejection = "the host is not a host name or an IP address";
                    return null;
                }

                break;
            default:
                rejection = $"the endpoint type {endpoint.EndPoint.GetType().Name} is not supported";
                return null;
        }

        var weight = meta?.Weight ?? 1;
        if (weight is < MeshEndpointOptions.MinWeight or > MeshEndpointOptions.MaxWeight)
        {
            rejection = string.Create(CultureInfo.InvariantCulture, $"the weight {weight} is not between {MeshEndpointOptions.MinWeight} and {MeshEndpointOptions.MaxWeight}");
            return null;
        }

        // What Rewrite will build must be a URI (a provider may hand anything to a DnsEndPoint).
        if (!Uri.TryCreate((scheme ?? Uri.UriSchemeHttp) + "://" + authority + pathBase + "/", UriKind.Absolute, out _))
        {
            rejection = "the address does not form a valid request URI";
            return null;
        }

        rejection = null;
        var id = meta?.Id ?? ((scheme ?? "*") + "://" + authority + pathBase);
        var hints = endpoint.Features.Get<IEndpointZoneHints>()?.ForZones;
        return new EndpointEntry(getState(id), weight, string.IsNullOrEmpty(meta?.Zone) ? null : meta.Zone, scheme, authority, pathBase, hostHeader, hints is { Count: > 0 } ? [.. hints] : null);
    }

    /// <summary>
    /// The authority of a URI endpoint. <see cref="Uri.Authority"/> drops an IPv6 zone id (<c>[fe80::1%eth0]</c>
    /// becomes <c>[fe80::1]</c>, which names no interface); <see cref="Uri.IdnHost"/> keeps it.
    /// </summary>
    private static string FormatAuthority(Uri uri)
    {
        if (uri.HostNameType != UriHostNameType.IPv6 || !uri.IdnHost.Contains('%', StringComparison.Ordinal))
        {
            return uri.Authority;
        }

        var host = "[" + uri.IdnHost + "]";
        return uri.IsDefaultPort ? host : FormatHost(host, uri.Port);
    }

    private static string FormatHost(string host, int port) =>
        port <= 0 ? host : host + ":" + port.ToString(CultureInfo.InvariantCulture);
}
