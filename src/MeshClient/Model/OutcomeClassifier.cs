using System.Net;
using Polly.Timeout;

namespace MeshClient.Model;

/// <summary>
/// The one place that decides what a response or an exception means: for the endpoint that answered (the balancer and
/// outlier detection, <see cref="OfResponse"/> and <see cref="OfException"/>), for a retry (<see cref="RetryReason"/>),
/// and for the call's metrics and span (<see cref="IsCallFailure"/>).
/// </summary>
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
    /// What an exception of one attempt says of the endpoint: nothing when the caller cancelled or the failure is ours
    /// (<see cref="IsLocal"/>); unreachable when no connection could be made (nothing was sent, including the primary
    /// handler's own connect timeout, <see cref="IsConnectTimeout"/>); a failure otherwise (an attempt timeout, a
    /// connection lost mid-request).
    /// </summary>
    /// <param name="exception">The exception the attempt ended with.</param>
    /// <param name="callerCancelled">Whether the caller's token was cancelled.</param>
    public static AttemptOutcome OfException(Exception exception, bool callerCancelled) => exception switch
    {
        OperationCanceledException when callerCancelled => AttemptOutcome.Cancelled,
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
