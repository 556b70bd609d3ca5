namespace MeshClient;

/// <summary>
/// Thrown when the deadline of the work in progress (<see cref="MeshDeadline.Current"/>, an incoming request's deadline
/// made current by <c>app.UseMeshDeadlines()</c>) ends an HTTP call: either nothing was left when the call began, and it
/// was never sent, or the deadline passed while it was under way, and it was cancelled. A gRPC call ends instead with a
/// trailers-only <c>DEADLINE_EXCEEDED</c> answer, which Grpc.Net.Client reports as <c>StatusCode.DeadlineExceeded</c>.
/// </summary>
public sealed class DeadlineExceededException : MeshException
{
    /// <summary>Initializes a new instance of the <see cref="DeadlineExceededException"/> class.</summary>
    /// <param name="serviceName">The service the call was addressed to.</param>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The timeout that ended the call, if it was under way.</param>
    public DeadlineExceededException(string serviceName, string message, Exception? innerException = null)
        : base(serviceName, message, innerException)
    {
    }
}
