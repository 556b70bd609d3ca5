using System.Globalization;
using System.Net;
using MeshClient.Configuration;
using MeshClient.Discovery;
using Microsoft.Extensions.Primitives;

namespace MeshClient.Consul;

/// <summary>One discoverable instance of a Consul service, as the mesh uses it. Compared by value.</summary>
internal sealed record ConsulInstance(string Id, Uri Address, int Weight, string? Zone);

/// <summary>
/// The immutable last-known-good view of one Consul service, with the active change token that fires when the
/// discoverable set changes (not when only the index moves).
/// </summary>
internal sealed class ConsulServiceState : IWatchedService
{
    private readonly CancellationTokenSource _changed;

    private ConsulServiceState(bool hasAnswer, bool known, ConsulInstance[] instances, int registered, ulong index, CancellationTokenSource changed)
    {
        HasAnswer = hasAnswer;
        Known = known;
        Instances = instances;
        Registered = registered;
        Index = index;
        _changed = changed;
        ChangeToken = new CancellationChangeToken(changed.Token);
    }

    /// <summary>Gets a value indicating whether Consul has answered at least once.</summary>
    public bool HasAnswer { get; }

    /// <summary>Gets a value indicating whether Consul knows the service (at least one registered instance).</summary>
    public bool Known { get; }

    /// <summary>Gets the discoverable instances, ordered by id.</summary>
    public ConsulInstance[] Instances { get; }

    /// <summary>Gets the number of registered instances, healthy or not.</summary>
    public int Registered { get; }

    public ulong Index { get; }

    public IChangeToken ChangeToken { get; }

    public static ConsulServiceState Initial() => new(false, false, [], 0, 0, new CancellationTokenSource());

    /// <summary>
    /// Returns the state after an answer: this state's change token is kept when nothing a caller sees changed,
    /// and fired (after the new state is published by the caller) when something did.
    /// </summary>
    public ConsulServiceState Next(bool known, ConsulInstance[] instances, int registered, ulong index, out bool changed)
    {
        changed = Known != known || !Instances.AsSpan().SequenceEqual(instances);
        return new ConsulServiceState(true, known, instances, registered, index, changed ? new CancellationTokenSource() : _changed);
    }

    /// <summary>Fires this state's change token, on the thread pool so that listeners never run inside the watch loop.</summary>
    public void NotifyChanged() => _ = _changed.CancelAsync();

    /// <summary>
    /// Turns Consul's answer into the discoverable instances (reference/consul-http-api.md §1.3–1.6): health aggregated
    /// over every check (maintenance or critical → out; warning → <c>Weights.Warning</c> unless only passing instances
    /// are wanted; passing → <c>Weights.Passing</c>); an instance whose weight is 0 is out; <c>Service.Address</c>, else
    /// <c>Node.Address</c>; <c>Service.Port</c> (absent: the scheme's default port).
    /// </summary>
    /// <remarks>
    /// Every instance returned is well-formed: an absolute <c>http</c> or <c>https</c> address with a host (an IPv6
    /// literal bracketed, its zone id kept) and a port from 1 to 65535, a weight from 1 to 65535, and an id no other
    /// instance has. An instance that cannot be one (no address, an address that is not a host, a port out of range,
    /// a negative weight, a scheme in <see cref="ConsulOptions.SchemeMetaKey"/> other than http or https) is left out
    /// and, when <paramref name="rejected"/> is given, described there; of instances sharing an id even after
    /// qualification by node, the one with the lowest address is kept (a deterministic choice) and the others are
    /// described.
    /// </remarks>
    public static ConsulInstance[] Select(ConsulHealthServiceEntry[] entries, ConsulOptions options, List<string>? rejected = null)
    {
        var result = new List<ConsulInstance>(entries.Length);
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            if (entry?.Service?.Id is { Length: > 0 } id)
            {
                ids[id] = ids.GetValueOrDefault(id) + 1;
            }
        }

        foreach (var entry in entries)
        {
            var service = entry?.Service;
            if (service?.Id is not { Length: > 0 } serviceId)
            {
                continue;
            }

            var weight = ChooseWeight(entry!.Checks, service.Weights, options.OnlyPassing);
            if (weight < 0)
            {
                rejected?.Add(string.Create(CultureInfo.InvariantCulture, $"instance '{serviceId}': weight {weight} is negative"));
                continue;
            }

            if (weight == 0)
            {
                continue;
            }

            var host = string.IsNullOrEmpty(service.Address) ? entry.Node?.Address : service.Address;
            if (string.IsNullOrEmpty(host))
            {
                rejected?.Add($"instance '{serviceId}': neither Service.Address nor Node.Address is set");
                continue;
            }

            if (service.Port is < 0 or > 65535)
            {
                rejected?.Add(string.Create(CultureInfo.InvariantCulture, $"instance '{serviceId}': port {service.Port} is not between 1 and 65535"));
                continue;
            }

            var scheme = options.Scheme;
            if (!string.IsNullOrEmpty(options.SchemeMetaKey) && service.Meta?.GetValueOrDefault(options.SchemeMetaKey) is { } metaScheme)
            {
                if (string.Equals(metaScheme, Uri.UriSchemeHttps, StringComparison.OrdinalIgnoreCase))
                {
                    scheme = Uri.UriSchemeHttps;
                }
                else if (string.Equals(metaScheme, Uri.UriSchemeHttp, StringComparison.OrdinalIgnoreCase))
                {
                    scheme = Uri.UriSchemeHttp;
                }
                else
                {
                    // The instance says it speaks something else: sending it HTTP would be wrong.
                    rejected?.Add($"instance '{serviceId}': Meta.{options.SchemeMetaKey} '{Shorten(metaScheme)}' is not http or https");
                    continue;
                }
            }

            var address = CreateAddress(scheme, host, service.Port);
            if (address is null)
            {
                rejected?.Add($"instance '{serviceId}': address '{Shorten(host)}' is not a host name or an IP address");
                continue;
            }

            string? zone = null;
            if (!string.IsNullOrEmpty(options.ZoneMetaKey))
            {
                // The instance's own word first, then its node's: the meta key, then Consul's Locality (1.17+).
                zone = NonEmpty(service.Meta?.GetValueOrDefault(options.ZoneMetaKey))
                    ?? NonEmpty(service.Locality?.Zone)
                    ?? NonEmpty(entry.Node?.Meta?.GetValueOrDefault(options.ZoneMetaKey))
                    ?? NonEmpty(entry.Node?.Locality?.Zone);
            }

            // Service IDs are unique per agent, not per cluster (the default ID is the name): qualify a shared one by node.
            var instanceId = ids[serviceId] > 1 ? (entry.Node?.Node ?? host) + "/" + serviceId : serviceId;
            result.Add(new ConsulInstance(instanceId, address, Math.Min(weight, MeshEndpointOptions.MaxWeight), zone));
        }

        // Ordered by id, then address and weight: which of two instances sharing an id survives does not depend on
        // the order of Consul's answer.
        result.Sort(static (a, b) =>
        {
            var order = string.CompareOrdinal(a.Id, b.Id);
            order = order != 0 ? order : string.CompareOrdinal(a.Address.OriginalString, b.Address.OriginalString);
            order = order != 0 ? order : a.Weight.CompareTo(b.Weight);
            return order != 0 ? order : string.CompareOrdinal(a.Zone, b.Zone);
        });
        for (var i = result.Count - 1; i > 0; i--)
        {
            if (result[i].Id == result[i - 1].Id)
            {
                rejected?.Add($"instance '{Shorten(result[i].Id)}': the id is not unique; kept {result[i - 1].Address.AbsoluteUri}, ignored {result[i].Address.AbsoluteUri}");
                result.RemoveAt(i);
            }
        }

        return [.. result];
    }

    private static int ChooseWeight(List<ConsulHealthCheck>? checks, ConsulWeights? weights, bool onlyPassing)
    {
        var warning = false;
        if (checks is not null)
        {
            foreach (var check in checks)
            {
                if (check is null)
                {
                    continue;
                }

                if (check.CheckId is { } checkId
                    && (checkId.StartsWith("_service_maintenance:", StringComparison.Ordinal) || checkId == "_node_maintenance"))
                {
                    return 0;
                }

                switch (check.Status)
                {
                    case "passing":
                        break;
                    case "warning":
                        warning = true;
                        break;
                    default:
                        // "critical", or a status Consul never sends: not discoverable.
                        return 0;
                }
            }
        }

        if (warning)
        {
            return onlyPassing ? 0 : weights?.Warning ?? 1;
        }

        return weights?.Passing ?? 1;
    }

    private static Uri? CreateAddress(string scheme, string host, int port)
    {
        // "[v6]" is accepted; "[v6]:port" and "v4:port" are not hosts (Consul gives the port separately), although
        // IPAddress.TryParse would drop the port of the first silently.
        var literal = host.Length > 2 && host[0] == '[' && host[^1] == ']' ? host[1..^1] : host;
        if (literal.Contains('[', StringComparison.Ordinal) || literal.Contains(']', StringComparison.Ordinal))
        {
            return null;
        }

        if (IPAddress.TryParse(literal, out var ip))
        {
            // A zone id (fe80::1%eth0) is kept, as the interface index IPAddress resolved it to.
            host = ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "[" + ip + "]" : ip.ToString();
        }
        else if (Uri.CheckHostName(host) != UriHostNameType.Dns)
        {
            return null;
        }

        var text = port > 0
            ? scheme + "://" + host + ":" + port.ToString(CultureInfo.InvariantCulture)
            : scheme + "://" + host;
        return Uri.TryCreate(text, UriKind.Absolute, out var uri) ? uri : null;
    }

    private static string? NonEmpty(string? text) => string.IsNullOrEmpty(text) ? null : text;

    private static string Shorten(string text) => text.Length <= 64 ? text : string.Concat(text.AsSpan(0, 64), "…");
}
