using System.Globalization;
using System.Net;
using System.Net.Http.Headers;

namespace MeshClient.Model;

/// <summary>
/// What the mesh reads of gRPC's wire format (gRPC over HTTP/2, PROTOCOL-HTTP2.md): whether a request is a gRPC call,
/// the <c>grpc-status</c> of an answer (in the headers of a trailers-only answer, or in the trailers), the server's
/// <c>grpc-retry-pushback-ms</c>, and the call's deadline (<c>grpc-timeout</c>). Words only: what a status means for the
/// endpoint, a retry and the call's telemetry is <see cref="OutcomeClassifier"/>'s to say. The mesh does not reference
/// Grpc.Net.Client; every check here is on headers and content types.
/// </summary>
internal static class GrpcProtocol
{
    /// <summary>No status: not a gRPC answer, or none in the headers looked at, or not a number.</summary>
    public const int NoStatus = -1;

    public const int Ok = 0;
    public const int Cancelled = 1;
    public const int Unknown = 2;
    public const int DeadlineExceeded = 4;
    public const int ResourceExhausted = 8;
    public const int Unimplemented = 12;
    public const int Internal = 13;
    public const int Unavailable = 14;
    public const int DataLoss = 15;

    private const string StatusHeader = "grpc-status";
    private const string PushbackHeader = "grpc-retry-pushback-ms";
    private const string TimeoutHeader = "grpc-timeout";

    private static readonly string[] Names =
    [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ];

    /// <summary>
    /// Whether the request is a gRPC call: its body's content type is <c>application/grpc</c> or
    /// <c>application/grpc+{format}</c> (gRPC-Web, which carries its trailers in the body, is not).
    /// </summary>
    public static bool IsGrpc(HttpRequestMessage? request) =>
        request?.Content?.Headers.ContentType?.MediaType is { } mediaType
        && mediaType.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase)
        && (mediaType.Length == 16 || mediaType[16] == '+');

    /// <summary>
    /// The <c>grpc-status</c> in the headers of an HTTP 200 answer to a gRPC request (a trailers-only answer: one HEADERS
    /// frame that ends the stream, the usual shape of an error), or <see cref="NoStatus"/>.
    /// </summary>
    public static int TrailersOnlyStatus(HttpResponseMessage response) =>
        response.StatusCode == HttpStatusCode.OK && IsGrpc(response.RequestMessage) ? StatusOf(response.Headers) : NoStatus;

    /// <summary>The <c>grpc-status</c> among <paramref name="headers"/> (a response's headers or its trailers), or <see cref="NoStatus"/>.</summary>
    public static int StatusOf(HttpHeaders headers) =>
        headers.NonValidated.TryGetValues(StatusHeader, out var values)
        && values.Count == 1
        && int.TryParse(values.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var status)
            ? status
            : NoStatus;

    /// <summary>
    /// The server's pushback among <paramref name="headers"/>: zero or more milliseconds; absent, negative (gRFC A6: do
    /// not retry) or malformed gives none.
    /// </summary>
    public static TimeSpan? Pushback(HttpHeaders headers) =>
        headers.NonValidated.TryGetValues(PushbackHeader, out var values)
        && values.Count == 1
        && int.TryParse(values.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var milliseconds)
            ? TimeSpan.FromMilliseconds(milliseconds)
            : null;

    /// <summary>
    /// The call's deadline as the <c>grpc-timeout</c> request header says it (1 to 8 digits and a unit: <c>H</c>,
    /// <c>M</c>, <c>S</c>, <c>m</c>, <c>u</c>, <c>n</c>; Grpc.Net.Client sends it for a call with a deadline), or
    /// <see langword="null"/> when the request is not a gRPC call or has none or a malformed one.
    /// </summary>
    public static TimeSpan? Timeout(HttpRequestMessage request)
    {
        if (!IsGrpc(request)
            || !request.Headers.NonValidated.TryGetValues(TimeoutHeader, out var values)
            || values.Count != 1)
        {
            return null;
        }

        return ParseTimeout(values.ToString());
    }

    /// <summary>Parses a <c>grpc-timeout</c> value (<see cref="MeshDeadline.TryParseTimeout"/>), or <see langword="null"/> when it is malformed.</summary>
    public static TimeSpan? ParseTimeout(string value) => MeshDeadline.TryParseTimeout(value, out var timeout) ? timeout : null;

    /// <summary>
    /// Whether the body is Grpc.Net.Client's single-message content (<c>PushUnaryContent&lt;,&gt;</c>, the body of unary
    /// and server-streaming calls), which serializes its message again each time it is sent. Matched by name: the mesh
    /// does not reference Grpc.Net.Client. A client-streaming or duplex call's body is written by the caller as it goes,
    /// and is never sent twice.
    /// </summary>
    public static bool IsSingleMessage(HttpContent? content) =>
        content?.GetType() is { IsGenericType: true, Name: "PushUnaryContent`2", Namespace: "Grpc.Net.Client.Internal" };

    /// <summary>
    /// A trailers-only <c>DEADLINE_EXCEEDED</c> answer to <paramref name="request"/>, made by the mesh when the call's
    /// deadline ended it before any answer: what a gRPC caller expects (Grpc.Net.Client reports it as
    /// <c>StatusCode.DeadlineExceeded</c> whichever of its timer and the mesh's ended the call first), where an exception
    /// of the mesh would reach it as <c>INTERNAL</c>.
    /// </summary>
    public static HttpResponseMessage DeadlineExceededAnswer(HttpRequestMessage request)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK)
        {
            RequestMessage = request,
            Version = request.Version,
            Content = new ByteArrayContent([]),
        };
        response.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        response.Headers.TryAddWithoutValidation(StatusHeader, "4");
        response.Headers.TryAddWithoutValidation("grpc-message", "Deadline Exceeded (the call's deadline ended it in the mesh)");
        return response;
    }

    /// <summary>The canonical name of a status (<c>UNAVAILABLE</c>), or its number for a code gRPC does not define.</summary>
    public static string Name(int status) =>
        (uint)status < (uint)Names.Length ? Names[status] : status.ToString(CultureInfo.InvariantCulture);
}
