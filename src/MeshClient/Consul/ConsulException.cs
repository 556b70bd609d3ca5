using System.Net;

namespace MeshClient.Consul;

/// <summary>What went wrong in a call to Consul; decides how it is logged and retried.</summary>
internal enum ConsulFailureKind
{
    /// <summary>No connection, a dropped connection, or no answer in time.</summary>
    Unreachable,

    /// <summary>A 5xx answer such as <c>500 No cluster leader</c>.</summary>
    ServerError,

    /// <summary>A 429 answer (rate limit, or too many connections from this IP).</summary>
    RateLimited,

    /// <summary>A 403 answer: the ACL token is unknown or lacks a permission.</summary>
    AccessDenied,

    /// <summary>Another 4xx answer: a request the agent refuses (bad parameter, Enterprise-only feature).</summary>
    Rejected,

    /// <summary>A 200 answer that cannot be used: malformed JSON, an oversized body, a bad index header.</summary>
    InvalidResponse,
}

/// <summary>
/// A failed call to Consul. The message names the agent, the request path and Consul's answer; it never holds the
/// ACL token (the token travels in a header, and any echo of it in a body is masked).
/// </summary>
internal sealed class ConsulException : Exception
{
    public ConsulException(ConsulFailureKind kind, string message, HttpStatusCode? statusCode = null, Exception? innerException = null)
        : base(message, innerException)
    {
        Kind = kind;
        StatusCode = statusCode;
    }

    public ConsulFailureKind Kind { get; }

    public HttpStatusCode? StatusCode { get; }
}
