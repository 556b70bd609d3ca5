using System.Net;
using MeshClient.Model;
using Polly.Timeout;

namespace MeshClient.Tests.Model;

/// <summary>
/// The one classifier the balancer, the retry predicate and telemetry share: what each response and exception means
/// for the endpoint, for a retry, and for the call's metrics.
/// </summary>
public sealed class OutcomeClassifierTests
{
    [Theory]
    [InlineData(200, "Success")]
    [InlineData(404, "Success")]
    [InlineData(408, "Success")]
    [InlineData(429, "Overloaded")]
    [InlineData(500, "Failure")]
    [InlineData(503, "Failure")]
    public void AResponse_SaysWhatItSaysOfTheEndpoint(int status, string expected) =>
        Assert.Equal(expected, OutcomeClassifier.OfResponse((HttpStatusCode)status).ToString());

    public static TheoryData<Exception, bool, string> Exceptions() => new()
    {
        { new TaskCanceledException(), true, nameof(AttemptOutcome.Cancelled) },
        { new HttpRequestException(HttpRequestError.ConnectionError, "refused"), false, nameof(AttemptOutcome.Unreachable) },
        { new HttpRequestException(HttpRequestError.NameResolutionError, "no such host"), false, nameof(AttemptOutcome.Unreachable) },
        { new HttpRequestException("consumed", new InvalidOperationException("content already read")), false, nameof(AttemptOutcome.Local) },
        { new TaskCanceledException("connect", new TimeoutException("ConnectTimeout")), false, nameof(AttemptOutcome.Unreachable) },
        { new TimeoutRejectedException(), false, nameof(AttemptOutcome.Failure) },
        { new HttpRequestException(HttpRequestError.ResponseEnded, "ended"), false, nameof(AttemptOutcome.Failure) },
        { new IOException("reset"), false, nameof(AttemptOutcome.Failure) },
    };

    [Theory]
    [MemberData(nameof(Exceptions))]
    public void AnException_SaysWhatItSaysOfTheEndpoint(Exception exception, bool callerCancelled, string expected) =>
        Assert.Equal(expected, OutcomeClassifier.OfException(exception, callerCancelled).ToString());

    [Theory]
    [InlineData(500, "status_5xx")]
    [InlineData(503, "status_5xx")]
    [InlineData(429, "status_429")]
    [InlineData(408, "status_408")]
    [InlineData(404, null)]
    [InlineData(200, null)]
    public void AResponse_IsRetriedForItsReason_AndMayHaveBeenSent(int status, string? reason)
    {
        using var response = new HttpResponseMessage((HttpStatusCode)status);
        Assert.Equal(reason, OutcomeClassifier.RetryReason(response, null, out var sent));
        Assert.True(sent);
    }

    public static TheoryData<Exception, string?, bool> RetriedExceptions() => new()
    {
        { new NoHealthyEndpointException("catalog", "none"), "no_endpoint", false },
        { new HttpRequestException(HttpRequestError.ConnectionError, "refused"), "connect_failure", false },
        { new TimeoutRejectedException(), "timeout", true },
        { new HttpRequestException("consumed", new ObjectDisposedException("content")), null, true },
        { new HttpRequestException(HttpRequestError.ResponseEnded, "ended"), "error", true },
        { new InvalidOperationException("ours"), null, true },
    };

    [Theory]
    [MemberData(nameof(RetriedExceptions))]
    public void AnException_IsRetriedForItsReason_AndSaysWhetherItWasSent(Exception exception, string? reason, bool sent)
    {
        Assert.Equal(reason, OutcomeClassifier.RetryReason(null, exception, out var wasSent));
        Assert.Equal(sent, wasSent);
    }

    [Theory]
    [InlineData(200, false)]
    [InlineData(404, false)]
    [InlineData(429, false)]
    [InlineData(500, true)]
    [InlineData(599, true)]
    public void ACall_FailsOnA5xx(int status, bool failed) => Assert.Equal(failed, OutcomeClassifier.IsCallFailure(status));
}
