using MeshClient.Model;
using System.Net;
using MeshClient.Balancing;

namespace MeshClient.Handlers;

/// <summary>
/// Resolves the request's host to a service, picks one of its endpoints with the service's policy, rewrites the
/// request URI (and Host header) to it, and records how the attempt went. The original URI is restored after
/// the call. IP literals and <c>localhost</c> pass through without a lookup; dotted names that no provider knows
/// pass through; single-label names that no provider knows fail fast with <see cref="UnknownServiceException"/>.
/// </summary>
internal sealed class MeshBalancingHandler(ServiceTableRegistry registry) : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var uri = request.RequestUri;
        if (MeshHosts.IsPassThrough(uri) || registry.IsExternal(uri.IdnHost))
        {
            return base.SendAsync(request, cancellationToken);
        }

        var table = registry.GetTable(uri.IdnHost);
        table.MarkUsed();
        var snapshot = table.Snapshot;
        return snapshot is not null
            ? SendToEndpointAsync(table, snapshot, request, uri, cancellationToken)
            : SendAfterResolutionAsync(table, request, uri, cancellationToken);
    }

    private async Task<HttpResponseMessage> SendAfterResolutionAsync(ServiceTable table, HttpRequestMessage request, Uri uri, CancellationToken cancellationToken)
    {
        await table.WaitForFirstResolutionAsync(cancellationToken).ConfigureAwait(false);
        var snapshot = table.Snapshot;
        if (snapshot is not null)
        {
            return await SendToEndpointAsync(table, snapshot, request, uri, cancellationToken).ConfigureAwait(false);
        }

        if (!table.IsSingleLabel)
        {
            // A dotted name that no provider knows is a host outside the mesh.
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }

        throw new UnknownServiceException(table.ServiceName, registry.ProviderNames, table.LastError);
    }

    private async Task<HttpResponseMessage> SendToEndpointAsync(ServiceTable table, EndpointSnapshot snapshot, HttpRequestMessage request, Uri original, CancellationToken cancellationToken)
    {
        var published = snapshot;
        snapshot = ForScheme(table, snapshot, original.Scheme);
        request.Options.TryGetValue(MeshRequestContext.Key, out var context);
        var endpoint = Pick(snapshot, context, out var isProbe);
        // A health change made the snapshot stale: its successor is being built, or was published since this call read
        // it (an ejection decided by the previous attempt). Pick from that one before giving up; a few rounds, since
        // health changes can follow each other while the call waits.
        for (var round = 0; endpoint is null && round < 3; round++)
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
            snapshot = ForScheme(table, current, original.Scheme);
            endpoint = Pick(snapshot, context, out isProbe);
        }

        if (endpoint is null)
        {
            throw new NoHealthyEndpointException(table.ServiceName, $"The service '{table.ServiceName}' has no endpoint that can take the request at the moment.");
        }

        context?.OnAttempt(endpoint, snapshot.Policy.Name);
        var state = endpoint.State;
        var setHost = endpoint.HostHeader is not null && request.Headers.Host is null;
        request.RequestUri = endpoint.Rewrite(original);
        if (context is not null)
        {
            context.AttemptUri = request.RequestUri;
        }
        if (setHost)
        {
            request.Headers.Host = endpoint.HostHeader;
        }

        var start = registry.TimeProvider.GetTimestamp();
        var outcome = AttemptOutcome.Failure;
        var retryAfter = TimeSpan.Zero;
        try
        {
            var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            outcome = Classify(response.StatusCode);
            if (response.StatusCode is HttpStatusCode.ServiceUnavailable or HttpStatusCode.TooManyRequests)
            {
                retryAfter = RetryAfter(response);
            }

            return response;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            outcome = AttemptOutcome.Cancelled;
            throw;
        }
        catch (HttpRequestException ex) when (ex.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError)
        {
            outcome = AttemptOutcome.Unreachable;
            throw;
        }
        catch (HttpRequestException ex) when (LocalFailure.Is(ex))
        {
            outcome = AttemptOutcome.Local; // our own failure (a body that cannot be read again): not the endpoint's
            throw;
        }
        catch (OperationCanceledException ex) when (IsConnectTimeout(ex))
        {
            // The primary handler's own ConnectTimeout (set by the application, which wins over the mesh's): .NET
            // reports it as a TaskCanceledException around a TimeoutException although nobody cancelled. Nothing was
            // sent: the endpoint is unreachable and the call is requeued, as for a refused connection.
            outcome = AttemptOutcome.Unreachable;
            throw new HttpRequestException(HttpRequestError.ConnectionError, $"{ex.InnerException!.Message} ({request.RequestUri!.Authority})", ex);
        }
        finally
        {
            // The outcome first: between the two, the attempt counts as in flight or as a failure, never as neither,
            // so the admission limit of a failing endpoint (failures + in flight) has no gap to let one more through.
            table.RecordOutcome(snapshot, endpoint, start, outcome, isProbe);
            if (retryAfter > TimeSpan.Zero)
            {
                table.RecordRetryAfter(endpoint, retryAfter);
            }

            state.OnAttemptEnded();
            request.RequestUri = original;
            if (setHost)
            {
                request.Headers.Host = null;
            }
        }
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
    private EndpointEntry? Pick(EndpointSnapshot snapshot, MeshRequestContext? context, out bool isProbe)
    {
        isProbe = false;
        var retry = context is { Attempts: > 0 };
        for (var i = 0; i < 3; i++)
        {
            var candidate = snapshot.Policy.Pick(snapshot, registry.Random, context);
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

    /// <summary>How long the endpoint asked not to be called again (<c>Retry-After</c>, a delay or a date), or zero.</summary>
    private TimeSpan RetryAfter(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - registry.TimeProvider.GetUtcNow(),
        _ => TimeSpan.Zero,
    };

    /// <summary>
    /// Whether an exception is SocketsHttpHandler's connect timeout (<see cref="SocketsHttpHandler.ConnectTimeout"/>):
    /// on .NET 10 a <see cref="TaskCanceledException"/> whose inner exception is a <see cref="TimeoutException"/>
    /// ("A connection could not be established within the configured ConnectTimeout."), raised while the caller's
    /// token is not cancelled (the caller's cancellation and <see cref="HttpClient.Timeout"/> are caught before this,
    /// and the attempt timeout, a Polly strategy inside this handler, surfaces as a <c>TimeoutRejectedException</c>).
    /// </summary>
    internal static bool IsConnectTimeout(OperationCanceledException exception) => exception.InnerException is TimeoutException;

    internal static AttemptOutcome Classify(HttpStatusCode status) => (int)status switch
    {
        429 => AttemptOutcome.Overloaded,
        >= 500 => AttemptOutcome.Failure,
        _ => AttemptOutcome.Success,
    };
}
