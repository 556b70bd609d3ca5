using System.Net;
using Polly.Timeout;

namespace MeshClient.Model;

/// <summary>
/// The one place that decides what a response or an exception means: for the endpoint that answered (the balancer and
/// outlier detection, <see cref="OfResponse(HttpStatusCode)"/>, <see cref="OfGrpcStatus"/> and <see cref="OfException"/>),
/// for a retry (<see cref="RetryReason"/>), and for the call's metrics and span (<see cref="IsCallFailure"/>,
/// <see cref="IsGrpcCallFailure"/>).
/// </summary>
/// <remarks>
/// <para>
/// A gRPC failure is an HTTP success (200 with <c>grpc-status</c> in the headers of a trailers-only answer, or in the
/// trailers after the messages), so the HTTP rules alone would count every failing gRPC call as a success of its
/// endpoint. What each gRPC status means here:
/// </para>
/// <list type="bullet">
/// <item><c>UNAVAILABLE</c> (14): the endpoint's failure (towards its ejection), and, in a trailers-only answer to a
/// single-message call, retryable on another endpoint (<see cref="RetryReason"/>).</item>
/// <item><c>DEADLINE_EXCEEDED</c> (4): a timeout, counted against the endpoint as an attempt timeout is; never retried
/// (the deadline is the whole call's).</item>
/// <item><c>RESOURCE_EXHAUSTED</c> (8): the endpoint is overloaded (as with 429); its <c>grpc-retry-pushback-ms</c>
/// keeps it out of the picks that long, as <c>Retry-After</c> does. Not retried: it is also a quota answer.</item>
/// <item>Every other status is the application's answer: a success for the endpoint.</item>
/// </list>
/// </remarks>
internal static class OutcomeClassifier
{
    /// <summary>What a response says of the endpoint: 429 overloaded, 5xx a failure, anything else a success.</summary>
    /// <param name="status">The response's status.</param>
    public static AttemptOutcome OfResponse(HttpStatusCode status) => (int)status switch
    {
        429 => AttemptOutcome.Overloaded,
        >= 500 => AttemptOutcome.Failure,
        _ => AttemptOutcome.Success,
    };

    /// <summary>
    /// What the gRPC status among <paramref name="headers"/> (a trailers-only answer's headers, or the trailers) says of
    /// the endpoint (see the remarks), and the pushback a <c>RESOURCE_EXHAUSTED</c> asked for in
    /// <paramref name="retryAfter"/> (zero otherwise). No status says nothing bad: a success.
    /// </summary>
    /// <param name="headers">The headers that carry the status.</param>
    /// <param name="retryAfter">How long the endpoint asked not to be called, or zero.</param>
    public static AttemptOutcome OfGrpcStatus(System.Net.Http.Headers.HttpHeaders headers, out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        switch (GrpcProtocol.StatusOf(headers))
        {
            case GrpcProtocol.Unavailable:
            case GrpcProtocol.DeadlineExceeded:
                return AttemptOutcome.Failure;
            case GrpcProtocol.ResourceExhausted:
                retryAfter = GrpcProtocol.Pushback(headers) ?? TimeSpan.Zero;
                return AttemptOutcome.Overloaded;
            default:
                return AttemptOutcome.Success;
        }
    }

    /// <summary>
    /// What an exception of one attempt says of the endpoint: nothing when the caller cancelled or the failure is ours
    /// (<see cref="IsLocal"/>); unreachable when no connection could be made (nothing was sent, including the primary
    /// handler's own connect timeout, <see cref="IsConnectTimeout"/>); a failure otherwise (an attempt timeout, a
    /// connection lost mid-request).
    /// </summary>
    /// <param name="exception">The exception the attempt ended with.</param>
    /// <param name="callerCancelled">Whether the caller's token was cancelled.</param>
    /// <param name="deadlinePassed">
    /// Whether the call's own deadline (gRPC's <c>grpc-timeout</c>) has passed: Grpc.Net.Client cancels a call at its
    /// deadline, and that cancellation is the endpoint's timeout (<c>DEADLINE_EXCEEDED</c>), not the caller's change of mind.
    /// </param>
    public static AttemptOutcome OfException(Exception exception, bool callerCancelled, bool deadlinePassed = false) => exception switch
    {
        OperationCanceledException when callerCancelled => deadlinePassed ? AttemptOutcome.Failure : AttemptOutcome.Cancelled,
        HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError } => AttemptOutcome.Unreachable,
        HttpRequestException local when IsLocal(local) => AttemptOutcome.Local,
        OperationCanceledException canceled when IsConnectTimeout(canceled) => AttemptOutcome.Unreachable,
        _ => AttemptOutcome.Failure,
    };

    /// <summary>
    /// Says whether a call's outcome is worth another attempt, with the reason as metrics name it, and whether the
    /// request may have reached the server (<paramref name="sent"/>): connection failures and "no endpoint" sent
    /// nothing, so any method may retry. <see langword="null"/> when it is not worth one.
    /// </summary>
    /// <param name="response">The response, when there is one.</param>
    /// <param name="exception">The exception, when there is one.</param>
    /// <param name="sent">Whether the request may have reached the server.</param>
    public static string? RetryReason(HttpResponseMessage? response, Exception? exception, out bool sent)
    {
        sent = true;
        switch (exception)
        {
            case null when response is not null && GrpcProtocol.TrailersOnlyStatus(response) == GrpcProtocol.Unavailable:
                // gRFC A6: a call is committed once response headers without a status, or a message, arrived; a
                // trailers-only UNAVAILABLE committed nothing, and UNAVAILABLE is the status gRPC names as safe to retry.
                // Like a request never sent it may go again whatever its method, when its body is a single message that
                // Grpc.Net.Client serializes again (a streaming body is written once, by the caller).
                if (!GrpcProtocol.IsSingleMessage(response.RequestMessage?.Content))
                {
                    return null;
                }

                sent = false;
                return "grpc_unavailable";
            case null:
                return response is null ? null : (int)response.StatusCode switch
                {
                    >= 500 => "status_5xx",
                    429 => "status_429",
                    408 => "status_408",
                    _ => null,
                };
            case NoHealthyEndpointException:
                sent = false;
                return "no_endpoint";
            case HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError }:
                sent = false;
                return "connect_failure";
            case TimeoutRejectedException:
                return "timeout";
            case HttpRequestException local when IsLocal(local):
                return null; // the request itself cannot be sent (its body was consumed): another attempt would fail too
            case HttpRequestException:
                return "error";
            default:
                return null;
        }
    }

    /// <summary>Whether a call that ended with <paramref name="status"/> failed, for its metrics and span (5xx).</summary>
    /// <param name="status">The final response's status.</param>
    public static bool IsCallFailure(int status) => status >= 500;

    /// <summary>
    /// Whether a gRPC call that ended with <paramref name="status"/> failed, for its metrics (<c>mesh.outcome</c>): the
    /// statuses that OpenTelemetry's RPC conventions mark as errors of the server (<c>UNKNOWN</c>,
    /// <c>DEADLINE_EXCEEDED</c>, <c>UNIMPLEMENTED</c>, <c>INTERNAL</c>, <c>UNAVAILABLE</c>, <c>DATA_LOSS</c>), the gRPC
    /// counterpart of a 5xx. The span follows the conventions for client spans: any status but <c>OK</c> is an error
    /// there (as a 4xx is for HTTP), with its name as <c>error.type</c>. <c>RESOURCE_EXHAUSTED</c> is not a failure of
    /// the call, as 429 is not.
    /// </summary>
    /// <param name="status">The call's gRPC status.</param>
    public static bool IsGrpcCallFailure(int status) => status is GrpcProtocol.Unknown or GrpcProtocol.DeadlineExceeded
        or GrpcProtocol.Unimplemented or GrpcProtocol.Internal or GrpcProtocol.Unavailable or GrpcProtocol.DataLoss;

    /// <summary>
    /// <see langword="true"/> when System.Net.Http wrapped an <see cref="InvalidOperationException"/> or an
    /// <see cref="ObjectDisposedException"/> of the request (content already consumed, content disposed): the request
    /// could not be sent as it was, whatever endpoint it went to. Connection errors are never local.
    /// </summary>
    /// <param name="exception">The exception.</param>
    public static bool IsLocal(HttpRequestException exception) =>
        exception.HttpRequestError is not (HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError)
        && exception.InnerException is InvalidOperationException or ObjectDisposedException;

    /// <summary>
    /// Whether an exception is SocketsHttpHandler's connect timeout (<see cref="SocketsHttpHandler.ConnectTimeout"/>):
    /// on .NET 10 a <see cref="TaskCanceledException"/> whose inner exception is a <see cref="TimeoutException"/>
    /// ("A connection could not be established within the configured ConnectTimeout."), raised while the caller's
    /// token is not cancelled (the attempt timeout, a Polly strategy, surfaces as a <see cref="TimeoutRejectedException"/>).
    /// </summary>
    /// <param name="exception">The exception.</param>
    public static bool IsConnectTimeout(OperationCanceledException exception) => exception.InnerException is TimeoutException;
}
