using System.Net;

namespace MeshClient.Kubernetes;

/// <summary>What went wrong in a call to the Kubernetes API server; decides how it is logged and retried.</summary>
internal enum KubernetesFailureKind
{
    /// <summary>No connection, a dropped connection, or no answer in time.</summary>
    Unreachable,

    /// <summary>
    /// An open watch was cut in the middle of its stream (an API server restarting, a load balancer's idle cut): routine;
    /// the watch resumes at once from its last resourceVersion.
    /// </summary>
    StreamEnded,

    /// <summary>A 5xx answer.</summary>
    ServerError,

    /// <summary>A 429 answer (API priority and fairness).</summary>
    RateLimited,

    /// <summary>A 401 answer: the token (or certificate) is not accepted.</summary>
    Unauthorized,

    /// <summary>A 403 answer: the identity lacks <c>list</c> or <c>watch</c> on <c>endpointslices</c>.</summary>
    Forbidden,

    /// <summary>A 410 answer or ERROR event: the resourceVersion is too old; list again.</summary>
    Gone,

    /// <summary>Another 4xx answer.</summary>
    Rejected,

    /// <summary>A 200 answer that cannot be used: malformed JSON, an oversized body or event.</summary>
    InvalidResponse,

    /// <summary>No usable credentials: no service account, no kubeconfig, or a kubeconfig that cannot be read.</summary>
    Configuration,
}

/// <summary>
/// A failed call to the Kubernetes API server. The message names the server, the request and the answer; it never
/// holds the bearer token (the token travels in a header only, and any echo of it in a body is masked).
/// </summary>
internal sealed class KubernetesException : Exception
{
    public KubernetesException(KubernetesFailureKind kind, string message, HttpStatusCode? statusCode = null, Exception? innerException = null)
        : base(message, innerException)
    {
        Kind = kind;
        StatusCode = statusCode;
    }

    public KubernetesFailureKind Kind { get; }

    public HttpStatusCode? StatusCode { get; }
}
