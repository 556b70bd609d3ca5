using MeshClient.Configuration;
using MeshClient.Model;
using Polly.Timeout;

namespace MeshClient.Handlers;

/// <summary>
/// Deadline propagation on the way out: a call made while a deadline is current (<see cref="MeshDeadline.Current"/>, an
/// incoming request's or a job's) inherits it on its <see cref="MeshRequestContext"/> — where it bounds the service's
/// total and attempt timeouts and stops retries as a gRPC call's own <c>grpc-timeout</c> does — sends the time left on
/// with each attempt, and fails at once, unsent, when none is left. The handlers call in here at three points: the call
/// handler when a call begins (<see cref="Apply"/>, <see cref="Refuse"/>), the balancer when it sends an attempt to an
/// endpoint (<see cref="WriteHeader"/>), the retry handler when the deadline ended the call (<see cref="Exceeded"/>).
/// </summary>
internal sealed class DeadlinePropagation(MeshOptionsChangeNotifier options)
{
    private const string GrpcTimeoutHeader = "grpc-timeout";

    /// <summary>
    /// Makes the call inherit <paramref name="deadline"/> when its service propagates deadlines
    /// (<c>Mesh:Deadlines:Propagate</c>, per service <c>Mesh:Services:{name}:Deadlines:Propagate</c>). Runs after the
    /// call's own deadline is set, from the same <paramref name="startTimestamp"/>.
    /// </summary>
    /// <returns>Whether nothing is left of the deadline: the call must not be sent (<see cref="Refuse"/>).</returns>
    public bool Apply(HttpRequestMessage request, MeshRequestContext context, MeshDeadline deadline, long startTimestamp)
    {
        if (!Propagates(context.ServiceName))
        {
            return false;
        }

        var remaining = deadline.Remaining;
        string? header;
        if (!GrpcProtocol.IsGrpc(request))
        {
            header = MeshDeadline.HeaderName;
        }
        else
        {
            // A gRPC call's grpc-timeout is rewritten only when the inherited deadline is the shorter.
            header = context.Deadline is { } own && own <= remaining ? null : GrpcTimeoutHeader;
        }

        context.Inherit(deadline, remaining, startTimestamp, header);
        return remaining <= TimeSpan.Zero;
    }

    /// <summary>Whether calls to <paramref name="service"/> propagate deadlines (the service's setting, else the global one; default on).</summary>
    public bool Propagates(string service)
    {
        var current = options.Current;
        return current.Services.TryGetValue(service, out var own) && own?.Deadlines.Propagate is { } propagate
            ? propagate
            : current.Deadlines.Propagate ?? true;
    }

    /// <summary>
    /// The end of a call whose inherited deadline had passed before it began: for gRPC, the trailers-only
    /// <c>DEADLINE_EXCEEDED</c> answer that the mesh gives when a deadline ends a call (nothing sent); otherwise
    /// <see cref="DeadlineExceededException"/>.
    /// </summary>
    public static HttpResponseMessage Refuse(HttpRequestMessage request, MeshRequestContext context) =>
        GrpcProtocol.IsGrpc(request)
            ? GrpcProtocol.DeadlineExceededAnswer(request)
            : throw new DeadlineExceededException(
                context.ServiceName,
                $"The call to '{context.ServiceName}' was not sent: the deadline of the work in progress (MeshDeadline.Current) had passed.");

    /// <summary>
    /// The end of a call that its deadline cut short (the mesh's timeout fired at the deadline): for gRPC, the
    /// trailers-only <c>DEADLINE_EXCEEDED</c> answer; for HTTP, whose only deadline is an inherited one,
    /// <see cref="DeadlineExceededException"/> around the timeout.
    /// </summary>
    public static HttpResponseMessage Exceeded(HttpRequestMessage request, MeshRequestContext context, TimeoutRejectedException timeout) =>
        GrpcProtocol.IsGrpc(request)
            ? GrpcProtocol.DeadlineExceededAnswer(request)
            : throw new DeadlineExceededException(
                context.ServiceName,
                $"The call to '{context.ServiceName}' was cancelled: the deadline of the work in progress (MeshDeadline.Current) passed before it ended.",
                timeout);

    /// <summary>
    /// Sends the time left of the call's inherited deadline with an attempt to a mesh endpoint (each attempt: a retry
    /// carries what is left then), replacing the header's value.
    /// </summary>
    public static void WriteHeader(HttpRequestMessage request, MeshRequestContext context)
    {
        if (context.DeadlineHeader is { } header && context.InheritedDeadline is { } deadline)
        {
            var headers = request.Headers;
            headers.Remove(header);
            headers.TryAddWithoutValidation(header, MeshDeadline.FormatTimeout(deadline.Remaining));
        }
    }
}
