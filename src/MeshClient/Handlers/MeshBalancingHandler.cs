using System.Net;
using System.Runtime.CompilerServices;
using MeshClient.Balancing;
using MeshClient.Model;
using MeshClient.Resilience;

namespace MeshClient.Handlers;

/// <summary>
/// The mesh's attempt step, run once per attempt (by <see cref="MeshRetryHandler"/> through
/// <see cref="MeshHedgingHandler"/>): resolves the request's host to a service, picks an endpoint (<see cref="EndpointPicker"/>), rewrites the request URI (and Host header) to it
/// (<see cref="EndpointEntry.Rewrite(Uri, string)"/>), sends it under the attempt timeout (<see cref="CallTimeout.StartAttempt"/>:
/// a timed-out attempt counts against its endpoint), and completes the lease with the attempt's outcome
/// (<see cref="OutcomeClassifier"/>) — at the response headers, or, for a gRPC answer whose status comes in the
/// trailers, when its body ends (<see cref="GrpcResponseBody"/>: the time to the headers is the latency sample). The
/// original URI is restored after the attempt. An attempt to an endpoint carries the time left of an inherited deadline
/// (<see cref="DeadlinePropagation.WriteHeader"/>), and its answer's load report (ORCA) is read. Dotted names that no
/// provider knows pass through (with the attempt timeout); single-label names that no provider knows fail fast with
/// <see cref="UnknownServiceException"/>. A call its route sent to a backend (<see cref="MeshRequestContext.Backend"/>)
/// is balanced over that backend's endpoints, and fails the same way when no provider knows the backend, dotted or not.
/// </summary>
/// <remarks>Its async methods' state machines are pooled (<see cref="PoolingAsyncValueTaskMethodBuilder{TResult}"/>): an attempt that waits for its socket allocates nothing here.</remarks>
internal sealed class MeshBalancingHandler(ServiceTableRegistry registry)
{
    /// <summary>Sends one attempt of <paramref name="call"/>.</summary>
    /// <param name="outer">The mesh's handler, whose inner handler sends.</param>
    /// <param name="call">The call.</param>
    /// <param name="timeout">The call's timeouts (its token cancels the attempt).</param>
    /// <param name="request">The request, with the caller's URI.</param>
    public ValueTask<HttpResponseMessage> SendAsync(MeshCallHandler outer, MeshRequestContext call, CallTimeout timeout, HttpRequestMessage request)
    {
        var uri = request.RequestUri!;

        // A routed call goes to its route's backend (never outside the mesh); any other to the request's host.
        var routed = call.Route is not null;
        var service = routed ? call.Backend : uri.IdnHost;
        if (!routed && registry.IsExternal(service))
        {
            return SendOutsideAsync(outer, timeout, request);
        }

        var table = registry.GetTable(service);
        table.MarkUsed();
        var snapshot = table.Snapshot;
        return snapshot is not null
            ? SendToEndpointAsync(outer, call, timeout, table, snapshot, request, uri)
            : SendAfterResolutionAsync(outer, call, timeout, table, request, uri, routed);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<HttpResponseMessage> SendAfterResolutionAsync(MeshCallHandler outer, MeshRequestContext call, CallTimeout timeout, ServiceTable table, HttpRequestMessage request, Uri uri, bool routed)
    {
        await table.WaitForFirstResolutionAsync(timeout.Token).ConfigureAwait(false);
        if (table.Snapshot is { } snapshot)
        {
            return await SendToEndpointAsync(outer, call, timeout, table, snapshot, request, uri).ConfigureAwait(false);
        }

        if (!table.IsSingleLabel && !routed)
        {
            // A dotted name that no provider knows is a host outside the mesh.
            return await SendOutsideAsync(outer, timeout, request).ConfigureAwait(false);
        }

        throw new UnknownServiceException(table.ServiceName, registry.ProviderNames, table.LastError);
    }

    /// <summary>An attempt on a host outside the mesh: as it is, under the attempt timeout.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<HttpResponseMessage> SendOutsideAsync(MeshCallHandler outer, CallTimeout timeout, HttpRequestMessage request)
    {
        timeout.StartAttempt();
        try
        {
            return await outer.SendInnerAsync(request, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (timeout.AttemptTimedOut)
        {
            throw timeout.AttemptTimeoutException(ex);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<HttpResponseMessage> SendToEndpointAsync(MeshCallHandler outer, MeshRequestContext call, CallTimeout timeout, ServiceTable table, EndpointSnapshot snapshot, HttpRequestMessage request, Uri original)
    {
        var lease = await registry.Picker.PickAsync(table, snapshot, original.Scheme, call, timeout.Token).ConfigureAwait(false);
        var endpoint = lease.Endpoint;
        var setHost = endpoint.HostHeader is not null && request.Headers.Host is null;
        request.RequestUri = endpoint.Rewrite(original, table.ServiceName);
        DeadlinePropagation.WriteHeader(request, call); // the time left of an inherited deadline, sent on
        if (setHost)
        {
            request.Headers.Host = endpoint.HostHeader;
        }

        var outcome = AttemptOutcome.Failure;
        var retryAfter = TimeSpan.Zero;
        var watched = false;
        try
        {
            timeout.StartAttempt();
            var response = await outer.SendInnerAsync(request, timeout.Token).ConfigureAwait(false);
            if (lease.ReadsLoadReports)
            {
                lease.ReadLoadReport(response.Headers); // asked first: Headers makes the collection of a response that has none
            }
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
        catch (OperationCanceledException ex) when (timeout.AttemptTimedOut)
        {
            // The attempt's own timeout: the endpoint's failure, reported as Polly's TimeoutRejectedException.
            var timedOut = timeout.AttemptTimeoutException(ex);
            outcome = OutcomeClassifier.OfException(timedOut, callerCancelled: false);
            throw timedOut;
        }
        catch (Exception ex)
        {
            // Cancelled by the caller or at the end of the call's total time: never the endpoint's fault, unless the
            // call's deadline passed (Grpc.Net.Client cancels at its deadline: the endpoint's timeout). A hedge that lost
            // (HedgeSettled) was cancelled by hedging: never charged to its endpoint, whatever the deadline.
            var callEnded = timeout.Token.IsCancellationRequested;
            outcome = OutcomeClassifier.OfException(ex, callEnded, callEnded && !call.HedgeSettled && call.DeadlinePassed(registry.TimeProvider));
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
