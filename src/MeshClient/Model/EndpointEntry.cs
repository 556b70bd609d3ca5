namespace MeshClient.Model;

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

    // The last URI rewritten to this endpoint: a client calls the same few paths, and reusing it saves a string, a
    // parse and its UriInfo on every attempt (278 B a request, issue 19).
    private EndpointUri? _lastRewrite;

    /// <summary>Creates an entry (see <c>EndpointEntryFactory</c> for discovered endpoints).</summary>
    /// <param name="state">The live state of the endpoint.</param>
    /// <param name="weight">Its weight.</param>
    /// <param name="zone">Its zone, if known.</param>
    /// <param name="scheme">The scheme of a URI endpoint, or <see langword="null"/> for a host:port one (the request's scheme).</param>
    /// <param name="authority">host[:port].</param>
    /// <param name="pathBase">The path base of a URI endpoint, without a trailing slash.</param>
    /// <param name="hostHeader">The Host header to send, if the endpoint names one.</param>
    /// <param name="forZones">The zones the endpoint is meant to serve (Kubernetes <c>hints.forZones</c>), if its provider says.</param>
    public EndpointEntry(EndpointState state, int weight, string? zone, string? scheme, string authority, string pathBase, string? hostHeader, string[]? forZones = null)
    {
        State = state;
        Weight = weight;
        Zone = zone;
        ForZones = forZones is { Length: > 0 } ? forZones : null;
        HostHeader = hostHeader;
        _authorityAndPathBase = authority + pathBase;
        _fixedPrefix = scheme is null ? null : scheme + "://" + _authorityAndPathBase;
        ServesHttps = scheme is null || scheme == Uri.UriSchemeHttps;
        Address = (scheme ?? "*") + "://" + _authorityAndPathBase;
    }

    public EndpointState State { get; }

    public string Id => State.Id;

    public int Weight { get; }

    public string? Zone { get; }

    /// <summary>
    /// Gets the zones the endpoint is meant to serve (Kubernetes <c>hints.forZones</c>), or <see langword="null"/> without
    /// a hint: with one, the endpoint is local to callers in those zones only, whatever its own <see cref="Zone"/>.
    /// </summary>
    public string[]? ForZones { get; }

    /// <summary>
    /// Whether a caller in <paramref name="zone"/> counts the endpoint as in its zone: its hints name that zone, or,
    /// without hints, its own zone is that zone (case-insensitive).
    /// </summary>
    public bool IsLocalTo(string zone)
    {
        if (ForZones is { } hints)
        {
            foreach (var hint in hints)
            {
                if (string.Equals(hint, zone, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }

            return false;
        }

        return string.Equals(Zone, zone, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Gets a value indicating whether the endpoint says where it is (a zone or zone hints).</summary>
    public bool HasZone => Zone is not null || ForZones is not null;

    /// <summary>Gets the value for the <c>Host</c> header (and so TLS SNI), when the endpoint names one.</summary>
    public string? HostHeader { get; }

    /// <summary>
    /// Gets a value indicating whether an https request may go to this endpoint: an https address, or a host:port
    /// endpoint (which keeps the request's scheme). An http address never takes one (see the snapshot's https view).
    /// </summary>
    public bool ServesHttps { get; }

    /// <summary>Gets the address for logs and diagnostics.</summary>
    public string Address { get; }

    /// <summary>
    /// Builds the URI of <paramref name="original"/> sent to this endpoint of <paramref name="serviceName"/>
    /// (reference/dotnet-platform.md §1.6), or hands out the last one built when the request's path and query (and, for
    /// a host:port endpoint, its scheme) are the same. An endpoint with an address sends with the address's scheme: the
    /// balancer gives an https request only endpoints that <see cref="ServesHttps"/>, so that scheme is never a downgrade.
    /// </summary>
    public EndpointUri Rewrite(Uri original, string serviceName)
    {
        ArgumentNullException.ThrowIfNull(serviceName);
        var pathAndQuery = original.PathAndQuery;
        var scheme = original.Scheme;
        if (Volatile.Read(ref _lastRewrite) is { } last
            && string.Equals(last.OriginalPathAndQuery, pathAndQuery, StringComparison.Ordinal)
            && (_fixedPrefix is not null || string.Equals(last.OriginalScheme, scheme, StringComparison.Ordinal))
            && string.Equals(last.ServiceName, serviceName, StringComparison.Ordinal))
        {
            return last;
        }

        string target;
        if (_fixedPrefix is not null)
        {
            target = string.Concat(_fixedPrefix, pathAndQuery);
        }
        else
        {
            // A host:port endpoint keeps the request's scheme; "https+http" means the first one.
            var plus = scheme.IndexOf('+', StringComparison.Ordinal);
            target = string.Concat(plus < 0 ? scheme : scheme.AsSpan(0, plus), "://", _authorityAndPathBase, pathAndQuery);
        }

        var rewritten = new EndpointUri(target, RewriteOptions, serviceName, scheme, pathAndQuery);
        Volatile.Write(ref _lastRewrite, rewritten);
        return rewritten;
    }

    /// <summary>Rewrites <paramref name="original"/> for an endpoint whose service does not matter (tests).</summary>
    internal EndpointUri Rewrite(Uri original) => Rewrite(original, string.Empty);
}
