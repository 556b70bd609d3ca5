using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MeshClient.Discovery;
using Microsoft.Extensions.Primitives;
using k8s.Models;

namespace MeshClient.Kubernetes;

/// <summary>One routable endpoint of a Kubernetes service, as the mesh uses it. Compared by value.</summary>
/// <param name="Id">The stable instance id: the pod's name (<c>targetRef</c>), else the address and port.</param>
/// <param name="Address">The address to call, with its scheme and port.</param>
/// <param name="Zone">The endpoint's zone, if the slice says.</param>
/// <param name="Terminating">Whether the endpoint is terminating (used only while the service has no ready one).</param>
/// <param name="NodeName">The node of the pod, if the slice says.</param>
/// <param name="ForZones">The zones of <c>hints.forZones</c>, comma-separated (a string, so that the record compares by value).</param>
internal sealed record KubernetesInstance(string Id, Uri Address, string? Zone, bool Terminating, string? NodeName = null, string ForZones = "")
{
    public IReadOnlyList<string> ForZonesList => ForZones.Length == 0 ? [] : ForZones.Split(',');
}

/// <summary>
/// The immutable last-known-good view of one Kubernetes service, with the active change token that fires when the
/// routable set changes (not when only the resourceVersion moves).
/// </summary>
internal sealed class KubernetesServiceState : IWatchedService
{
    private static readonly string[] PreferredPortNames = ["http", "https", "grpc"];

    private readonly CancellationTokenSource _changed;

    private KubernetesServiceState(bool hasAnswer, bool known, KubernetesInstance[] instances, CancellationTokenSource changed)
    {
        HasAnswer = hasAnswer;
        Known = known;
        Instances = instances;
        _changed = changed;
        ChangeToken = new CancellationChangeToken(changed.Token);
    }

    /// <summary>Gets a value indicating whether the API server has answered at least once.</summary>
    public bool HasAnswer { get; }

    /// <summary>Gets a value indicating whether the service has at least one EndpointSlice.</summary>
    public bool Known { get; }

    /// <summary>Gets the routable endpoints, ordered by id.</summary>
    public KubernetesInstance[] Instances { get; }

    public IChangeToken ChangeToken { get; }

    public static KubernetesServiceState Initial() => new(false, false, [], new CancellationTokenSource());

    /// <summary>
    /// Returns the state after an answer: this state's change token is kept when nothing a caller sees changed,
    /// and fired (after the new state is published by the caller) when something did.
    /// </summary>
    public KubernetesServiceState Next(bool known, KubernetesInstance[] instances, out bool changed)
    {
        changed = !HasAnswer || Known != known || !Instances.AsSpan().SequenceEqual(instances);
        return new KubernetesServiceState(true, known, instances, changed ? new CancellationTokenSource() : _changed);
    }

    /// <summary>Fires this state's change token, on the thread pool so that listeners never run inside the watch loop.</summary>
    public void NotifyChanged() => _ = _changed.CancelAsync();

    /// <summary>
    /// Merges every slice of a service into its routable endpoints (kube-proxy's rules):
    /// <list type="bullet">
    /// <item><c>conditions.ready</c> true or absent, and not <c>terminating</c> → routable;</item>
    /// <item><c>serving</c> and <c>terminating</c> → used only while the service has no ready endpoint;</item>
    /// <item>anything else (not ready, not serving) → left out;</item>
    /// <item>the port: the slice port named <paramref name="portName"/>, else <c>http</c>, <c>https</c>, <c>grpc</c>,
    /// else the slice's only port; <c>appProtocol</c> <c>https</c> (or a port named <c>https</c>) → <c>https</c>,
    /// otherwise <c>http</c>;</item>
    /// <item>IPv4 and IPv6 slices (FQDN slices are skipped); a dual-stack pod is called on one address, IPv4 first;</item>
    /// <item>the id: the pod's name from <c>targetRef</c> (stable across rediscovery), else address and port.</item>
    /// </list>
    /// </summary>
    public static KubernetesInstance[] Select(IEnumerable<V1EndpointSlice> slices, string? portName, List<string>? rejected = null)
    {
        var ready = new List<(KubernetesInstance Instance, int Family)>();
        var terminating = new List<(KubernetesInstance Instance, int Family)>();
        foreach (var slice in slices.OrderBy(s => s.Metadata?.Name, StringComparer.Ordinal))
        {
            var family = slice.AddressType switch
            {
                "IPv4" => 4,
                "IPv6" => 6,
                _ => 0,
            };
            if (family == 0 || slice.Endpoints is not { Count: > 0 } endpoints)
            {
                continue;
            }

            var port = ChoosePort(slice.Ports, portName);
            if (port is null)
            {
                rejected?.Add(portName is null
                    ? $"slice '{slice.Metadata?.Name}': no port named http, https or grpc, and not exactly one port; set Mesh:Kubernetes:Services:{{name}}:PortName"
                    : $"slice '{slice.Metadata?.Name}': no port named '{portName}'");
                continue;
            }

            foreach (var endpoint in endpoints)
            {
                if (endpoint?.Addresses is not { Count: > 0 } addresses || !IPAddress.TryParse(addresses[0], out var ip)
                    || (ip.AddressFamily == AddressFamily.InterNetwork) != (family == 4))
                {
                    rejected?.Add($"slice '{slice.Metadata?.Name}': an endpoint without a usable {slice.AddressType} address");
                    continue;
                }

                var conditions = endpoint.Conditions;
                var isTerminating = conditions?.Terminating ?? false;
                var isReady = (conditions?.Ready ?? true) && !isTerminating;
                var isServing = conditions?.Serving ?? conditions?.Ready ?? true;
                if (!isReady && !(isServing && isTerminating))
                {
                    continue;
                }

                var host = family == 6 ? "[" + ip + "]" : ip.ToString();
                var address = new Uri(string.Create(CultureInfo.InvariantCulture, $"{port.Value.Scheme}://{host}:{port.Value.Port}"), UriKind.Absolute);
                // A service's pods are all in its namespace: the pod's name is unique among its endpoints.
                var id = endpoint.TargetRef?.Name is { Length: > 0 } pod ? pod : string.Create(CultureInfo.InvariantCulture, $"{host}:{port.Value.Port}");
                var forZones = endpoint.Hints?.ForZones is { Count: > 0 } hints
                    ? string.Join(',', hints.Select(z => z?.Name).Where(z => !string.IsNullOrEmpty(z)))
                    : string.Empty;
                var instance = new KubernetesInstance(
                    id, address, string.IsNullOrEmpty(endpoint.Zone) ? null : endpoint.Zone, isTerminating,
                    string.IsNullOrEmpty(endpoint.NodeName) ? null : endpoint.NodeName, forZones);
                (isReady ? ready : terminating).Add((instance, family));
            }
        }

        var chosen = ready.Count > 0 ? ready : terminating;

        // One endpoint per id (a dual-stack pod is in an IPv4 and an IPv6 slice): IPv4 first, then the lowest address.
        chosen.Sort(static (a, b) =>
        {
            var order = string.CompareOrdinal(a.Instance.Id, b.Instance.Id);
            order = order != 0 ? order : a.Family.CompareTo(b.Family);
            return order != 0 ? order : string.CompareOrdinal(a.Instance.Address.OriginalString, b.Instance.Address.OriginalString);
        });
        var result = new List<KubernetesInstance>(chosen.Count);
        foreach (var (instance, _) in chosen)
        {
            if (result.Count == 0 || result[^1].Id != instance.Id)
            {
                result.Add(instance);
            }
        }

        return [.. result];
    }

    private static (int Port, string Scheme)? ChoosePort(IList<Discoveryv1EndpointPort>? ports, string? portName)
    {
        if (ports is not { Count: > 0 })
        {
            return null;
        }

        Discoveryv1EndpointPort? chosen = null;
        if (portName is not null)
        {
            chosen = ports.FirstOrDefault(p => string.Equals(p?.Name, portName, StringComparison.Ordinal));
        }
        else
        {
            foreach (var name in PreferredPortNames)
            {
                chosen = ports.FirstOrDefault(p => string.Equals(p?.Name, name, StringComparison.Ordinal));
                if (chosen is not null)
                {
                    break;
                }
            }

            chosen ??= ports.Count == 1 ? ports[0] : null;
        }

        // A port of null means "all ports" (a selector-less service): there is no port to call.
        if (chosen?.Port is not int port || port is < 1 or > 65535)
        {
            return null;
        }

        var https = string.Equals(chosen.AppProtocol, "https", StringComparison.OrdinalIgnoreCase)
            || (chosen.AppProtocol is null && string.Equals(chosen.Name, "https", StringComparison.Ordinal));
        return (port, https ? Uri.UriSchemeHttps : Uri.UriSchemeHttp);
    }
}
