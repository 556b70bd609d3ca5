using System.Net;
using System.Net.Sockets;
using MeshClient.Configuration;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Security;

/// <summary>
/// Decides whether a discovered endpoint may receive requests (<see cref="MeshOptions.AllowedNetworks"/>,
/// <see cref="MeshOptions.AllowedHostNames"/>). Built once per options instance and asked once per endpoint when an
/// endpoint set is built, never per request. Host names are compared as written, never resolved (DNS rebinding).
/// </summary>
internal sealed class EndpointAddressFilter
{
    private readonly IPNetwork[] _networks;
    private readonly string[] _names;
    private readonly string[] _suffixes;

    private EndpointAddressFilter(MeshOptions options, IPNetwork[] networks, string[] names, string[] suffixes)
    {
        Options = options;
        _networks = networks;
        _names = names;
        _suffixes = suffixes;
    }

    /// <summary>Gets the options this filter was built from.</summary>
    public MeshOptions Options { get; }

    /// <summary>Gets a value indicating whether every endpoint is allowed (no <c>AllowedNetworks</c>).</summary>
    public bool AllowsAll => _networks.Length == 0;

    /// <summary>Builds the filter of validated options (an entry that does not parse is ignored; the validator reports it).</summary>
    public static EndpointAddressFilter Create(MeshOptions options)
    {
        var networks = new List<IPNetwork>();
        foreach (var value in options.AllowedNetworks)
        {
            if (TryParseNetwork(value, out var network))
            {
                networks.Add(network);
            }
        }

        var names = new List<string>();
        var suffixes = new List<string>();
        foreach (var value in options.AllowedHostNames)
        {
            var name = NormalizeName(value);
            if (name.StartsWith("*.", StringComparison.Ordinal))
            {
                suffixes.Add(name[1..]);
            }
            else if (name.Length > 0)
            {
                names.Add(name);
            }
        }

        return new EndpointAddressFilter(options, [.. networks], [.. names], [.. suffixes]);
    }

    /// <summary>
    /// Parses <c>address/prefix</c> or a bare address (a single host). The base address must have no bit set past the
    /// prefix (<c>10.0.0.0/8</c>, not <c>10.1.2.3/8</c>), so that a typo cannot silently widen or narrow a range.
    /// </summary>
    public static bool TryParseNetwork(string? value, out IPNetwork network)
    {
        network = default;
        if (string.IsNullOrWhiteSpace(value))
        {
            return false;
        }

        var text = value.Trim();
        if (!text.Contains('/', StringComparison.Ordinal))
        {
            if (!IPAddress.TryParse(text, out var single) || text.Contains('%', StringComparison.Ordinal))
            {
                return false;
            }

            network = new IPNetwork(single, single.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
            return true;
        }

        // IPNetwork.TryParse masks the bits past the prefix; a base address that had some is refused instead.
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        return IPAddress.TryParse(text.AsSpan(0, slash), out var written)
            && !text.Contains('%', StringComparison.Ordinal)
            && IPNetwork.TryParse(text, out network)
            && network.BaseAddress.Equals(written);
    }

    /// <summary>
    /// Returns <see langword="true"/> when the endpoint may be used; otherwise <paramref name="reason"/> says why. An
    /// endpoint type this filter does not know (neither URI, IP nor DNS) is left to the caller.
    /// </summary>
    public bool Allows(ServiceEndpoint endpoint, out string? reason)
    {
        reason = null;
        if (AllowsAll)
        {
            return true;
        }

        IPAddress? address = null;
        string? name = null;
        switch (endpoint.EndPoint)
        {
            case UriEndPoint { Uri: var uri }:
                if (uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6)
                {
                    address = IPAddress.Parse(uri.DnsSafeHost);
                }
                else
                {
                    name = uri.IdnHost;
                }

                break;
            case IPEndPoint ip:
                address = ip.Address;
                break;
            case DnsEndPoint dns:
                // "10.0.0.1" or even "167772161" in a DnsEndPoint connects to an address: check it as one.
                if (!IPAddress.TryParse(dns.Host, out address))
                {
                    name = dns.Host;
                }

                break;
            default:
                return true;
        }

        if (address is not null)
        {
            if (IsAllowed(address))
            {
                return true;
            }

            reason = $"its address {address} is outside Mesh:AllowedNetworks";
            return false;
        }

        if (IsAllowedName(NormalizeName(name!)))
        {
            return true;
        }

        reason = $"its host name '{name}' is not in Mesh:AllowedHostNames (names are never resolved to check them)";
        return false;
    }

    /// <summary>Returns whether an address is inside one of the networks; an IPv4-mapped IPv6 address counts as IPv4.</summary>
    public bool IsAllowed(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        foreach (var network in _networks)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }

    private bool IsAllowedName(string name)
    {
        foreach (var allowed in _names)
        {
            if (string.Equals(allowed, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        foreach (var suffix in _suffixes)
        {
            if (name.Length > suffix.Length && name.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    private static string NormalizeName(string name) => name.Trim().TrimEnd('.');
}
