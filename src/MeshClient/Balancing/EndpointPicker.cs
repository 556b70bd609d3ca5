using MeshClient.Model;
using MeshClient.Telemetry;

namespace MeshClient.Balancing;

/// <summary>
/// The whole pick of an attempt, in one place: the endpoints the request's scheme allows, the service's policy, the
/// admission of the endpoint it chose (a single probe for a returning endpoint, a failure limit for a failing one,
/// never a probe for a retry), the fallbacks when the picks keep being refused, and one more pick from the next
/// snapshot when a health change is being published. It returns an <see cref="EndpointLease"/>, or throws
/// <see cref="NoHealthyEndpointException"/> or <see cref="NoHttpsEndpointException"/> before a byte is sent (so the
/// call may be retried). With zone routing on, the zone's view first (<see cref="ZoneView.Choose"/>), then the whole
/// snapshot when the zone's endpoints cannot admit the attempt. Lock-free and allocation-free unless it has to wait
/// for a snapshot.
/// </summary>
internal sealed class EndpointPicker(Randomizer random, TimeProvider time, MeshInstrumentation? telemetry = null)
{
    private readonly Randomizer _random = random;

    /// <summary>Picks and admits an endpoint of <paramref name="table"/> for one attempt of <paramref name="context"/>.</summary>
    /// <param name="table">The service's table.</param>
    /// <param name="snapshot">The snapshot the caller read from the table.</param>
    /// <param name="scheme">The scheme of the request (<c>http</c>, <c>https</c>, Aspire's <c>https+http</c>).</param>
    /// <param name="context">The call, when the mesh's outer handlers run (its history steers retries away).</param>
    /// <param name="cancellationToken">Cancels the wait for a snapshot being rebuilt.</param>
    public ValueTask<EndpointLease> PickAsync(ServiceTable table, EndpointSnapshot snapshot, string scheme, MeshRequestContext? context, CancellationToken cancellationToken)
    {
        var view = ForScheme(table, snapshot, scheme);
        if (view.Zones is { } zones)
        {
            return PickInZones(table, snapshot, view, zones, scheme, context, cancellationToken);
        }

        var endpoint = Admit(view, context, out var isProbe);
        return endpoint is not null
            ? new ValueTask<EndpointLease>(Lease(table, view, endpoint, isProbe, context))
            : PickFromNextSnapshotAsync(table, snapshot, scheme, context, cancellationToken);
    }

    /// <summary>
    /// The pick of a service with zone routing on: from the view <see cref="ZoneView.Choose"/> gives (the zone's, the
    /// other zones' for a probe, or all), then from all endpoints when that view admitted nothing (a probe in flight, a
    /// failing endpoint at its limit); the attempt's locality goes on the call's span and the zone-attempts counter.
    /// </summary>
    private ValueTask<EndpointLease> PickInZones(ServiceTable table, EndpointSnapshot snapshot, EndpointSnapshot view, ZoneView zones, string scheme, MeshRequestContext? context, CancellationToken cancellationToken)
    {
        var now = time.GetTimestamp();
        var chosen = zones.Choose(view, context, now, _random);
        var endpoint = Admit(chosen, context, out var isProbe);
        if (endpoint is null && !ReferenceEquals(chosen, view))
        {
            chosen = view;
            endpoint = Admit(view, context, out isProbe);
        }

        if (endpoint is null)
        {
            return PickFromNextSnapshotAsync(table, snapshot, scheme, context, cancellationToken);
        }

        RecordLocality(table.ServiceName, zones.IsLocalEndpoint(endpoint), context);
        return new ValueTask<EndpointLease>(Lease(table, chosen, endpoint, isProbe, context));
    }

    /// <summary>
    /// Tags the call's span with the attempt's locality (the last attempt's stays), counts the attempt by it, and notes
    /// it on the call (its duration metric is tagged with the last attempt's).
    /// </summary>
    private void RecordLocality(string service, bool local, MeshRequestContext? context)
    {
        context?.SetLocality(local);
        var locality = local ? "local" : "remote";
        MeshInstrumentation.SetTag(MeshTags.Locality, locality);
        if (telemetry is { ZoneAttempts.Enabled: true } instruments)
        {
            instruments.ZoneAttempts.Add(1, new KeyValuePair<string, object?>(MeshTags.Service, service), new KeyValuePair<string, object?>(MeshTags.Locality, locality));
        }
    }

    /// <summary>
    /// A health change made the snapshot stale: its successor is being built, or was published since this call read
    /// it (an ejection decided by the previous attempt). Picks from that one before giving up; a few rounds, since
    /// health changes can follow each other while the call waits.
    /// </summary>
    private async ValueTask<EndpointLease> PickFromNextSnapshotAsync(ServiceTable table, EndpointSnapshot published, string scheme, MeshRequestContext? context, CancellationToken cancellationToken)
    {
        for (var round = 0; round < 3; round++)
        {
            if (table.RebuildQueued)
            {
                await table.WhenRebuiltAsync(cancellationToken).ConfigureAwait(false);
            }

            if (table.Snapshot is not { } current || ReferenceEquals(current, published))
            {
                break;
            }

            published = current;
            var view = ForScheme(table, current, scheme);
            var endpoint = Admit(view, context, out var isProbe);
            if (endpoint is not null)
            {
                if (view.Zones is { } zones)
                {
                    RecordLocality(table.ServiceName, zones.IsLocalEndpoint(endpoint), context);
                }

                return Lease(table, view, endpoint, isProbe, context);
            }
        }

        throw new NoHealthyEndpointException(table.ServiceName, $"The service '{table.ServiceName}' has no endpoint that can take the request at the moment.");
    }

    private EndpointLease Lease(ServiceTable table, EndpointSnapshot snapshot, EndpointEntry endpoint, bool isProbe, MeshRequestContext? context)
    {
        context?.OnAttempt(endpoint, snapshot.Policy.Name);
        return new EndpointLease(table, snapshot, endpoint, isProbe, time.GetTimestamp(), context);
    }

    /// <summary>
    /// The endpoints a request may go to by its scheme: an https request only to endpoints that serve https (never a
    /// downgrade; a service with none fails with <see cref="NoHttpsEndpointException"/>); Aspire's <c>https+http</c>
    /// to the https ones when the service has any, else to all; <c>http</c> and <c>http+https</c> to all.
    /// </summary>
    private static EndpointSnapshot ForScheme(ServiceTable table, EndpointSnapshot snapshot, string scheme)
    {
        if (!scheme.StartsWith(Uri.UriSchemeHttps, StringComparison.Ordinal))
        {
            return snapshot;
        }

        if (snapshot.Https is { } https)
        {
            return https;
        }

        return scheme.Length > Uri.UriSchemeHttps.Length && scheme[Uri.UriSchemeHttps.Length] == '+'
            ? snapshot
            : throw new NoHttpsEndpointException(table.ServiceName);
    }

    /// <summary>
    /// Picks with the service's policy, then asks the endpoint to admit the attempt: a probing endpoint admits a
    /// single probe at a time, so a returning endpoint sees one request before full traffic, and a failing endpoint
    /// admits attempts only while its failures plus attempts in flight stay under the ejection limit. A retry never
    /// takes a probe. Every fallback goes through the same admission: when no endpoint can take the attempt, it fails
    /// with <see cref="NoHealthyEndpointException"/> (before a byte is sent, so it may be retried) — after one more pick
    /// from the next snapshot when a health change is being published.
    /// </summary>
    private EndpointEntry? Admit(EndpointSnapshot snapshot, MeshRequestContext? context, out bool isProbe)
    {
        isProbe = false;
        var retry = context is { IsRetry: true };
        for (var i = 0; i < 3; i++)
        {
            var candidate = snapshot.Policy.Pick(snapshot, _random, context);
            if (candidate is null)
            {
                return null;
            }

            // A retry does not gamble on a probe: a call that already failed goes to an endpoint in good standing.
            if ((!retry || candidate.State.Status != EndpointStatus.Probing)
                && candidate.State.TryAdmit(snapshot.Panic, snapshot.UnreachableAdmitted, out isProbe))
            {
                return candidate;
            }
        }

        // Rare: the picks kept landing on endpoints that refused (a probe in flight, a failing endpoint at its
        // limit). Take the endpoint with the fewest consecutive failures that is not probing and can still admit,
        // preferring one this call has not tried (not the first in order: with several endpoints failing, that would
        // often be one).
        isProbe = false;
        var fallback = LeastFailing(snapshot, context, probing: false);
        if (fallback is not null && fallback.State.TryAdmitOrdinary(snapshot.Panic, snapshot.UnreachableAdmitted))
        {
            return fallback;
        }

        // Every endpoint is being probed: a first attempt may take a free probe …
        if (!retry)
        {
            foreach (var candidate in snapshot.Active)
            {
                if (candidate.State.Status == EndpointStatus.Probing && candidate.State.TryAdmit(snapshot.Panic, snapshot.UnreachableAdmitted, out isProbe))
                {
                    return candidate;
                }
            }
        }

        // … and a retry, or a first attempt with every probe in flight, goes to a probing endpoint as an ordinary
        // attempt, which does not decide the endpoint's fate: there is nowhere else to send it, and failing it would be
        // certain. Still within the endpoint's failure limit.
        isProbe = false;
        fallback = LeastFailing(snapshot, context, probing: true);
        if (fallback is not null && fallback.State.TryAdmitOrdinary(snapshot.Panic, snapshot.UnreachableAdmitted))
        {
            return fallback;
        }

        return null;
    }

    /// <summary>
    /// The endpoint with the fewest consecutive failures among those that can admit an ordinary attempt now, one the
    /// call has not tried before any it has (one pass); probing endpoints only, or none, as <paramref name="probing"/> says.
    /// </summary>
    private static EndpointEntry? LeastFailing(EndpointSnapshot snapshot, MeshRequestContext? context, bool probing)
    {
        EndpointEntry? best = null;
        var bestTried = false;
        foreach (var candidate in snapshot.Active)
        {
            var state = candidate.State;
            if ((state.Status == EndpointStatus.Probing) != probing || !state.CanAdmitOrdinary(snapshot.Panic, snapshot.UnreachableAdmitted))
            {
                continue; // also an ejected endpoint still in a snapshot published before its ejection
            }

            var tried = context is not null && context.HasTried(state);
            if (tried && context!.UntriedOnly)
            {
                continue; // a hedge never goes to an endpoint the call is already waiting on
            }

            if (best is null
                || (bestTried && !tried)
                || (bestTried == tried && state.ConsecutiveFailures < best.State.ConsecutiveFailures))
            {
                best = candidate;
                bestTried = tried;
            }
        }

        return best;
    }

}
