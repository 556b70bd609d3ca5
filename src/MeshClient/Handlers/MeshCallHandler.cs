using System.Diagnostics;
using System.Globalization;
using MeshClient.Balancing;
using MeshClient.Model;
using MeshClient.Routing;
using MeshClient.Telemetry;

namespace MeshClient.Handlers;

/// <summary>
/// The mesh's one handler, one logical call: creates its <see cref="MeshRequestContext"/>, one Internal span named
/// after the service (the parent of the per-attempt Client spans that System.Net.Http creates; the mesh never
/// creates a second Client span), and the call metrics. With no listener it creates no activity. A gRPC call whose
/// status comes in the trailers is recorded when its response body ends (<see cref="GrpcResponseBody"/>), with
/// <c>rpc.grpc.status_code</c>; the call's <c>grpc-timeout</c> becomes its deadline (<see cref="MeshRequestContext.Deadline"/>),
/// shortened to the current <see cref="MeshDeadline"/>'s time left (<see cref="DeadlinePropagation"/>).
/// For a service with routes, the call's route and backend are decided once, before the first attempt (by the retry
/// step, <see cref="MeshRouter"/>), and tag its span and metrics.
/// The call's resilience (<see cref="MeshRetryHandler"/>), the hedging of each try (<see cref="MeshHedgingHandler"/>) and
/// each attempt's balancing (<see cref="MeshBalancingHandler"/>) are steps it calls with the context as an argument, not
/// handlers of their own: each handler's async state machine, and the request's options dictionary that carried the
/// context between them, cost bytes on every request (issue 19).
/// </summary>
/// <remarks>
/// When the mesh took redirect following over from the primary handler (<paramref name="maxRedirects"/> above 0),
/// a redirect is followed here, each hop sent through the whole mesh again (<see cref="MeshRedirects"/>); the check
/// is a status comparison on the path that already awaits, so a call without a redirect costs nothing more.
/// </remarks>
internal sealed class MeshCallHandler(MeshInstrumentation telemetry, TimeProvider time, MeshRetryHandler retries, int maxRedirects = 0, DeadlinePropagation? deadlines = null) : DelegatingHandler
{
    private static readonly string[] StatusCodes = [.. Enumerable.Range(0, 600).Select(i => i.ToString(CultureInfo.InvariantCulture))];

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var uri = request.RequestUri;
        if (MeshHosts.IsPassThrough(uri))
        {
            return maxRedirects == 0 ? base.SendAsync(request, cancellationToken) : SendPassThroughAsync(request, cancellationToken);
        }

        return SendWithTelemetryAsync(request, uri.IdnHost, cancellationToken);
    }

    private async Task<HttpResponseMessage> SendPassThroughAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        return MeshRedirects.TryFollow(request, response, maxRedirects)
            ? await SendAsync(request, cancellationToken).ConfigureAwait(false)
            : response;
    }

    private async Task<HttpResponseMessage> SendWithTelemetryAsync(HttpRequestMessage request, string service, CancellationToken cancellationToken)
    {
        var context = new MeshRequestContext(service);
        var start = time.GetTimestamp();
        if (GrpcProtocol.Timeout(request) is { } deadline)
        {
            context.SetDeadline(deadline, start); // bounds this call's total and attempt timeouts
        }

        // The deadline of the work in progress (an incoming request's): without one, this AsyncLocal read is all it costs.
        var expired = deadlines is not null && MeshDeadline.Current is { } inherited && deadlines.Apply(request, context, inherited, start);

        var activity = MeshInstrumentation.Source.StartActivity(service, ActivityKind.Internal);
        var serviceTag = new KeyValuePair<string, object?>(MeshTags.Service, service);
        var countActive = telemetry.ActiveRequests.Enabled;
        if (countActive)
        {
            telemetry.ActiveRequests.Add(1, serviceTag);
        }

        var call = new CallRecord(context, activity, serviceTag, countActive, start);
        string? errorType = null;
        var failed = false;
        var grpcStatus = GrpcProtocol.NoStatus;
        GrpcResponseBody? body = null;
        HttpResponseMessage response;
        try
        {
            // The route is decided in the retry step (pooled): an await of it here would grow this method's state
            // machine, boxed on every call that waits for its socket.
            response = expired ? DeadlinePropagation.Refuse(request, context) : await retries.SendAsync(this, context, request, start, cancellationToken).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status >= 400)
            {
                errorType = status < StatusCodes.Length ? StatusCodes[status] : status.ToString(CultureInfo.InvariantCulture);
                failed = OutcomeClassifier.IsCallFailure(status);
            }
            else if (response.Content is GrpcResponseBody watched)
            {
                body = watched; // a gRPC status still to come in the trailers: the call is recorded when its body ends
            }
            else if ((grpcStatus = GrpcProtocol.TrailersOnlyStatus(response)) != GrpcProtocol.NoStatus)
            {
                (errorType, failed) = OfGrpcStatus(grpcStatus);
            }
        }
        catch (Exception ex)
        {
            errorType = ex.GetType().FullName;
            failed = true;
            throw;
        }
        finally
        {
            if (body is null)
            {
                End(call, errorType, failed, grpcStatus);
            }
        }

        if (body is not null)
        {
            var ending = (Handler: this, Call: call);
            body.WhenEnded(ended => ending.Handler.OnBodyEnded(ending.Call, ended));
            return response;
        }

        // The next hop is a new logical call, with its own span and metrics.
        return MeshRedirects.TryFollow(request, response, maxRedirects)
            ? await SendAsync(request, cancellationToken).ConfigureAwait(false)
            : response;
    }

    /// <summary>Sends an attempt through the handlers below the mesh (the factory's and the primary handler).</summary>
    internal Task<HttpResponseMessage> SendInnerAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        base.SendAsync(request, cancellationToken);

    /// <summary>
    /// What a gRPC status says of the call: any status but <c>OK</c> is an error of the span, named as its
    /// <c>error.type</c> (OpenTelemetry's RPC conventions for client spans); a failure of the call in the metrics only for
    /// a server error (<see cref="OutcomeClassifier.IsGrpcCallFailure"/>).
    /// </summary>
    private static (string? ErrorType, bool Failed) OfGrpcStatus(int status) =>
        status == GrpcProtocol.Ok ? (null, false) : (GrpcProtocol.Name(status), OutcomeClassifier.IsGrpcCallFailure(status));

    /// <summary>Records a call whose gRPC body ended: with the status of its trailers, or the failure of its reading.</summary>
    private void OnBodyEnded(CallRecord call, GrpcResponseBody body)
    {
        var (errorType, failed) = body.Status != GrpcProtocol.NoStatus ? OfGrpcStatus(body.Status)
            : body.Error is { } error and not (OperationCanceledException or ObjectDisposedException) ? (error.GetType().FullName, true)
            : (null, false); // the caller let go of it (a stream cancelled): nothing more to say
        End(call, errorType, failed, body.Status);
    }

    /// <summary>Ends a call's telemetry: the active count, its attempts, its duration, its span.</summary>
    private void End(CallRecord call, string? errorType, bool failed, int grpcStatus)
    {
        if (call.CountActive)
        {
            telemetry.ActiveRequests.Add(-1, call.ServiceTag);
        }

        var route = call.Context.Route;
        if (call.Context.Attempts > 0 && telemetry.Attempts.Enabled)
        {
            if (route is null)
            {
                telemetry.Attempts.Add(call.Context.Attempts, call.ServiceTag);
            }
            else
            {
                telemetry.Attempts.Add(call.Context.Attempts, call.ServiceTag, new(MeshTags.Route, route), new(MeshTags.Backend, call.Context.Backend));
            }
        }

        if (telemetry.RequestDuration.Enabled)
        {
            var tags = new TagList { call.ServiceTag, { MeshTags.Outcome, failed ? "failure" : "success" } };
            if (errorType is not null)
            {
                tags.Add(MeshTags.ErrorType, errorType);
            }

            if (route is not null)
            {
                // The configured names only: low cardinality.
                tags.Add(MeshTags.Route, route);
                tags.Add(MeshTags.Backend, call.Context.Backend);
            }

            if (call.Context.Locality is { } locality)
            {
                tags.Add(MeshTags.Locality, locality); // local or remote: services with zone routing on only
            }

            telemetry.RequestDuration.Record(time.GetElapsedTime(call.Start).TotalSeconds, tags);
        }

        if (call.Activity is { } activity)
        {
            if (grpcStatus != GrpcProtocol.NoStatus && activity.IsAllDataRequested)
            {
                activity.SetTag(MeshTags.GrpcStatusCode, grpcStatus);
            }

            Complete(activity, call.Context, errorType);
        }
    }

    /// <summary>What the end of a call's telemetry needs, kept while a gRPC body is open.</summary>
    private readonly record struct CallRecord(MeshRequestContext Context, Activity? Activity, KeyValuePair<string, object?> ServiceTag, bool CountActive, long Start);

    private static void Complete(Activity activity, MeshRequestContext context, string? errorType)
    {
        if (activity.IsAllDataRequested)
        {
            activity.SetTag(MeshTags.Service, context.ServiceName);
            activity.SetTag(MeshTags.Attempts, context.Attempts);
            if (context.Route is { } route)
            {
                activity.SetTag(MeshTags.Route, route);
                activity.SetTag(MeshTags.Backend, context.Backend);
            }

            if (context.Policy is { } policy)
            {
                activity.SetTag(MeshTags.Policy, policy);
            }

            if (context.LastEndpoint is { } endpoint)
            {
                activity.SetTag(MeshTags.EndpointId, endpoint.Id);
                if (endpoint.Zone is { } zone)
                {
                    activity.SetTag(MeshTags.EndpointZone, zone);
                }
            }

            if (errorType is not null)
            {
                activity.SetTag(MeshTags.ErrorType, errorType);
                activity.SetStatus(ActivityStatusCode.Error);
            }
        }

        activity.Dispose();
    }
}
