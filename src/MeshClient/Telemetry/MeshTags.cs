using MeshClient.Model;

namespace MeshClient.Telemetry;

/// <summary>The names of the attributes the mesh puts on its spans and metrics.</summary>
public static class MeshTags
{
    /// <summary>The logical service called, for example <c>catalog</c>.</summary>
    public const string Service = "mesh.service";

    /// <summary>The route of the service that took the call (its configured name), for a service with routes only.</summary>
    public const string Route = "mesh.route";

    /// <summary>
    /// The service the call's route sent it to (a configured backend: <c>catalog-v2</c>), for a service with routes only;
    /// every attempt of the call goes to that service's endpoints.
    /// </summary>
    public const string Backend = "mesh.backend";

    /// <summary>The load-balancing policy that picked the endpoint.</summary>
    public const string Policy = "mesh.lb.policy";

    /// <summary>The stable instance id of the endpoint of the final attempt (spans only).</summary>
    public const string EndpointId = "mesh.endpoint.id";

    /// <summary>The zone of the endpoint of the final attempt, when known (spans only).</summary>
    public const string EndpointZone = "mesh.endpoint.zone";

    /// <summary>
    /// Whether the endpoint of the final attempt (spans), or of an attempt (the <c>mesh.client.zone.attempts</c>
    /// counter), is in the caller's zone: <c>local</c> or <c>remote</c>. Only for services with zone routing on.
    /// </summary>
    public const string Locality = "mesh.locality";

    /// <summary>The number of attempts a call made.</summary>
    public const string Attempts = "mesh.attempts";

    /// <summary>The outcome of a call: <c>success</c> or <c>failure</c>.</summary>
    public const string Outcome = "mesh.outcome";

    /// <summary>Why a retry happened: <c>connect_failure</c>, <c>no_endpoint</c>, <c>timeout</c>, <c>status_5xx</c>, <c>status_429</c>, <c>status_408</c>, <c>grpc_unavailable</c> (a trailers-only gRPC <c>UNAVAILABLE</c>), <c>error</c>.</summary>
    public const string RetryReason = "mesh.retry.reason";

    /// <summary>The state of endpoints counted by the endpoint gauge: <c>healthy</c>, <c>ejected</c>, <c>probing</c>.</summary>
    public const string EndpointState = "mesh.endpoint.state";

    /// <summary>Why an endpoint was ejected: <c>consecutive_failures</c>, <c>failure_percentage</c>, <c>probe_failed</c>.</summary>
    public const string EjectionReason = "mesh.ejection.reason";

    /// <summary>
    /// The numeric gRPC status of a gRPC call (OpenTelemetry's RPC conventions), on the mesh's span: read from the headers
    /// of a trailers-only answer, or from the trailers when the response body has been read to its end (spans only).
    /// </summary>
    public const string GrpcStatusCode = "rpc.grpc.status_code";

    /// <summary>The number of hedges a call sent (spans only; set only on a call that sent one).</summary>
    public const string Hedges = "mesh.hedges";

    /// <summary>
    /// Which attempt of a hedged try answered: on the span, its number (0 the first attempt, 1 the first hedge); on the
    /// hedge counter, <c>first</c>, <c>hedge</c> or <c>none</c> (every attempt failed).
    /// </summary>
    public const string HedgeWinner = "mesh.hedge.winner";

    /// <summary>The OpenTelemetry error type: an exception type name, an HTTP status code, or a gRPC status name (<c>UNAVAILABLE</c>).</summary>
    public const string ErrorType = "error.type";
}
