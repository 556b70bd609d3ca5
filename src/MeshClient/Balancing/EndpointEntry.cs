using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MeshClient.Discovery;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Balancing;

/// <summary>
/// One endpoint of one snapshot: immutable data (weight, zone, how to rewrite a request URI) plus a reference to
/// the live <see cref="EndpointState"/>.
/// </summary>
internal sealed class EndpointEntry
{
    private static readonly UriCreationOptions RewriteOptions = new() { DangerousDisablePathAndQueryCanonicalization = true };

    // "scheme://authority/pathbase" for URI endpoints; for host:port endpoints the scheme comes from the request.
    private readonly string? _fixedPrefix;
    private readonly string _authorityAndPathBase;

    private EndpointEntry(EndpointState state, int weight, string? zone, string? scheme, string authority, string pathBase, string? hostHeader)
    {
        State = state;
        Weight = weight;
        Zone = zone;
        HostHeader = hostHeader;
        _authorityAndPathBase = authority + pathBase;
        _fixedPrefix = scheme is null ? null : scheme + "://" + _authorityAndPathBase;
        Address = (scheme ?? "*") + "://" + _authorityAndPathBase;
    }

    public EndpointState State { get; }

    public string Id => State.Id;

    public int Weight { get; }

    public string? Zone { get; }

    /// <summary>Gets the value for the <c>Host</c> header (and so TLS SNI), when the endpoint names one.</summary>
    public string? HostHeader { get; }

    /// <summary>Gets the address for logs and diagnostics.</summary>
    public string Address { get; }

    /// <summary>Builds the URI of <paramref name="original"/> sent to this endpoint (reference/dotnet-platform.md §1.6).</summary>
    public Uri Rewrite(Uri original)
    {
        string target;
        if (_fixedPrefix is not null)
        {
            target = string.Concat(_fixedPrefix, original.PathAndQuery);
        }
        else
        {
            // A host:port endpoint keeps the request's scheme; "https+http" means the first one.
            var scheme = original.Scheme;
            var plus = scheme.IndexOf('+', StringComparison.Ordinal);
            target = string.Concat(plus < 0 ? scheme : scheme.AsSpan(0, plus), "://", _authorityAndPathBase, original.PathAndQuery);
        }

        return new Uri(target, RewriteOptions);
    }

    /// <summary>Creates the entry of a discovered endpoint, or returns <see langword="null"/> for an unsupported one.</summary>
    public static EndpointEntry? Create(ServiceEndpoint endpoint, Func<string, EndpointState> getState)
    {
        var meta = endpoint.Features.Get<IMeshEndpointFeature>();
        var hostHeader = endpoint.Features.Get<IHostNameFeature>()?.HostName;
        string? scheme = null;
        string authority;
        var pathBase = string.Empty;
        switch (endpoint.EndPoint)
        {
            case UriEndPoint { Uri: var uri }:
                scheme = uri.Scheme;
                authority = uri.Authority; // host[:port], the port omitted when it is the scheme's default
                pathBase = uri.AbsolutePath.TrimEnd('/');
                break;
            case IPEndPoint ip:
                authority = FormatHost(ip.Address.AddressFamily == AddressFamily.InterNetworkV6 ? "[" + ip.Address + "]" : ip.Address.ToString(), ip.Port);
                break;
            case DnsEndPoint dns:
                authority = FormatHost(dns.Host, dns.Port);
                break;
            default:
                return null;
        }

        var id = meta?.Id ?? ((scheme ?? "*") + "://" + authority + pathBase);
        return new EndpointEntry(getState(id), meta?.Weight ?? 1, meta?.Zone, scheme, authority, pathBase, hostHeader);
    }

    private static string FormatHost(string host, int port) =>
        port <= 0 ? host : host + ":" + port.ToString(CultureInfo.InvariantCulture);
}
