using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace MeshClient.AspNetCore.Deadlines;

/// <summary>
/// Makes an incoming request's deadline current (<see cref="MeshDeadline.Current"/>) while the request is handled, so
/// that the mesh calls it makes are bounded by it and send it on. The deadline is read from gRPC's
/// <c>grpc-timeout</c> and from <see cref="MeshDeadline.HeaderName"/> (<c>mesh-timeout</c>, same format); when both are
/// present the shorter wins; a malformed or repeated value is ignored. It is counted from the moment this middleware
/// runs, so it belongs early in the pipeline.
/// </summary>
internal sealed class MeshDeadlineMiddleware(RequestDelegate next, TimeProvider time)
{
    private const string GrpcTimeoutHeader = "grpc-timeout";

    public Task InvokeAsync(HttpContext context)
    {
        var headers = context.Request.Headers;
        var timeout = Shorter(Read(headers, GrpcTimeoutHeader), Read(headers, MeshDeadline.HeaderName));
        return timeout is { } value ? InvokeWithDeadlineAsync(context, value) : next(context);
    }

    private async Task InvokeWithDeadlineAsync(HttpContext context, TimeSpan timeout)
    {
        using var scope = MeshDeadline.Begin(timeout, time);
        await next(context).ConfigureAwait(false);
    }

    /// <summary>The timeout in one header: exactly one well-formed value, or none.</summary>
    internal static TimeSpan? Read(IHeaderDictionary headers, string name) =>
        headers.TryGetValue(name, out var values) && values.Count == 1 && MeshDeadline.TryParseTimeout(values.ToString(), out var timeout)
            ? timeout
            : null;

    private static TimeSpan? Shorter(TimeSpan? a, TimeSpan? b) => a is null ? b : b is null || a <= b ? a : b;
}
