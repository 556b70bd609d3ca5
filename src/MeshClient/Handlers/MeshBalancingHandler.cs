using System.Net;
using MeshClient.Balancing;
using MeshClient.Model;

namespace MeshClient.Handlers;

/// <summary>
/// Resolves the request's host to a service, picks an endpoint (<see cref="EndpointPicker"/>), rewrites the request
/// URI (and Host header) to it, sends, and completes the lease with the attempt's outcome
/// (<see cref="OutcomeClassifier"/>) — at the response headers, or, for a gRPC answer whose status comes in the
/// trailers, when its body ends (<see cref="GrpcResponseBody"/>: the time to the headers is the latency sample). The original URI is restored after the attempt. IP literals and
/// <c>localhost</c> pass through without a lookup; dotted names that no provider knows pass through; single-label
/// names that no provider knows fail fast with <see cref="UnknownServiceException"/>. A call its route sent to a backend
/// (<see cref="MeshRequestContext.Backend"/>) is balanced over that backend's endpoints, and fails the same way when no
/// provider knows the backend, dotted or not.
/// </summary>
internal sealed class MeshBalancingHandler(ServiceTableRegistry registry) : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var uri = request.RequestUri;
        if (MeshHosts.IsPassThrough(uri))
        {
            return base.SendAsync(request, cancellationToken);
        }

        // A routed call goes to its route's backend (never outside the mesh); any other to the request's host.
        var routed = request.Options.TryGetValue(MeshRequestContext.Key, out var context) && context.Route is not null;
        var service = routed ? context!.Backend : uri.IdnHost;
        if (!routed && registry.IsExternal(service))
        {
            return base.SendAsync(request, cancellationToken);
        }

        var table = registry.GetTable(service);
        table.MarkUsed();
        var snapshot = table.Snapshot;
        return snapshot is not null
            ? SendToEndpointAsync(table, snapshot, request, uri, cancellationToken)
            : SendAfterResolutionAsync(table, request, uri, routed, cancellationToken);
    }

    private async Task<HttpResponseMessage> SendAfterResolutionAsync(ServiceTable table, HttpRequestMessage request, Uri uri, bool routed, CancellationToken cancellationToken)
    {
        await table.WaitForFirstResolutionAsync(cancellationToken).ConfigureAwait(false);
        if (table.Snapshot is { } snapshot)
        {
            return await SendToEndpointAsync(table, snapshot, request, uri, cancellationToken).ConfigureAwait(false);
        }

        if (!table.IsSingleLabel && !routed)
        {
            // A dotted name that no provider knows is a host outside the mesh.
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }

        throw new UnknownServiceException(table.ServiceName, registry.ProviderNames, table.LastError);
    }

    private async Task<HttpResponseMessage> SendToEndpointAsync(ServiceTable table, EndpointSnapshot snapshot, HttpRequestMessage request, Uri original, CancellationToken cancellationToken)
    {
        request.Options.TryGetValue(MeshRequestContext.Key, out var context);
        var lease = await registry.Picker.PickAsync(table, snapshot, original.Scheme, context, cancellationToken).ConfigureAwait(false);
        var endpoint = lease.Endpoint;
        var setHost = endpoint.HostHeader is not null && request.Headers.Host is null;
        request.RequestUri = endpoint.Rewrite(original);
        if (context is not null)
        {
            context.AttemptUri = request.RequestUri;
            DeadlinePropagation.WriteHeader(request, context); // the time left of an inherited deadline, sent on
        }

        if (setHost)
        {
            request.Headers.Host = endpoint.HostHeader;
        }

        var outcome = AttemptOutcome.Failure;
        var retryAfter = TimeSpan.Zero;
        var watched = false;
        try
        {
            var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            lease.ReadLoadReport(response.Headers);
            outcome = OutcomeClassifier.OfResponse(response.StatusCode);
            if (response.StatusCode is HttpStatusCode.ServiceUnavailable or HttpStatusCode.TooManyRequests)
            {
                retryAfter = RetryAfter(response);
            }
            else if (response.StatusCode == HttpStatusCode.OK && GrpcProtocol.IsGrpc(request))
            {
                if (GrpcProtocol.StatusOf(response.Headers) != GrpcProtocol.NoStatus)
                {
                    outcome = OutcomeClassifier.OfGrpcStatus(response.Headers, out retryAfter); // a trailers-only answer
                }
                else
                {
                    // The status comes in the trailers, after the messages: the lease ends with the body.
                    GrpcResponseBody.Watch(response, lease);
                    watched = true;
                }
            }

            return response;
        }
        catch (Exception ex)
        {
            var callerCancelled = cancellationToken.IsCancellationRequested;
            // A hedge that lost (HedgeSettled) was cancelled by hedging: never charged to its endpoint, whatever the deadline.
            outcome = OutcomeClassifier.OfException(ex, callerCancelled, callerCancelled && context is not null && !context.HedgeSettled && context.DeadlinePassed(registry.TimeProvider));
            if (outcome == AttemptOutcome.Unreachable && ex is OperationCanceledException canceled && OutcomeClassifier.IsConnectTimeout(canceled))
            {
                // The primary handler's own ConnectTimeout (set by the application, which wins over the mesh's): .NET
                // reports it as a TaskCanceledException around a TimeoutException although nobody cancelled. Nothing
                // was sent: the call is requeued, as for a refused connection.
                throw new HttpRequestException(HttpRequestError.ConnectionError, $"{ex.InnerException!.Message} ({request.RequestUri!.Authority})", ex);
            }

            throw;
        }
        finally
        {
            if (!watched)
            {
                lease.Complete(outcome, retryAfter);
            }

            request.RequestUri = original;
            if (setHost)
            {
                request.Headers.Host = null;
            }
        }
    }

    /// <summary>How long the endpoint asked not to be called again (<c>Retry-After</c>, a delay or a date), or zero.</summary>
    private TimeSpan RetryAfter(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - registry.TimeProvider.GetUtcNow(),
        _ => TimeSpan.Zero,
    };
}
