using System.Diagnostics;

namespace MeshClient.Hedging;

/// <summary>Which requests may be hedged, and the copy of a request that a hedge sends.</summary>
internal static class HedgeRequest
{
    /// <summary>
    /// Whether a request may be sent twice at once: a safe method (GET, HEAD, OPTIONS, TRACE; RFC 9110 §9.2.1) and a
    /// body that two sends can read at the same time (none, or one held in memory: <see cref="ByteArrayContent"/>, so
    /// <see cref="StringContent"/> and <see cref="FormUrlEncodedContent"/>, and <see cref="ReadOnlyMemoryContent"/>).
    /// PUT and DELETE are idempotent but not safe: a losing write still on its way to a server can land after the
    /// caller's next write to the same resource, so they are retried (one attempt at a time) but never hedged. A gRPC
    /// call is a POST, and Grpc.Net.Client writes its message through per-call state that two sends would share.
    /// </summary>
    public static bool CanHedge(HttpRequestMessage request)
    {
        var method = request.Method;
        return (method == HttpMethod.Get || method == HttpMethod.Head || method == HttpMethod.Options || method == HttpMethod.Trace)
            && request.Content is null or ByteArrayContent or ReadOnlyMemoryContent;
    }

    /// <summary>
    /// A copy of <paramref name="request"/> for one hedge: its method, <paramref name="uri"/> (the URI before the balancer
    /// rewrote it), version and policy, headers (the caller's own <c>Host</c> only: the balancer sets one per attempt; and
    /// not the trace context, which System.Net.Http writes for each attempt's Client span), options (the call's mesh
    /// context among them) and the same content object (<see cref="CanHedge"/>). <see cref="Release"/> disposes it
    /// without disposing that content.
    /// </summary>
    public static HttpRequestMessage Clone(HttpRequestMessage request, Uri uri, string? callerHost)
    {
        var clone = new HttpRequestMessage(request.Method, uri)
        {
            Version = request.Version,
            VersionPolicy = request.VersionPolicy,
            Content = request.Content,
        };

        var traceFields = DistributedContextPropagator.Current.Fields;
        foreach (var header in request.Headers.NonValidated)
        {
            if (string.Equals(header.Key, "Host", StringComparison.OrdinalIgnoreCase) || Contains(traceFields, header.Key))
            {
                continue;
            }

            clone.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        if (callerHost is not null)
        {
            clone.Headers.Host = callerHost;
        }

        var options = (IDictionary<string, object?>)clone.Options;
        foreach (var option in (IEnumerable<KeyValuePair<string, object?>>)request.Options)
        {
            options[option.Key] = option.Value;
        }

        return clone;
    }

    /// <summary>Disposes a hedge's copy, leaving the content it shares with the caller's request alone.</summary>
    public static void Release(HttpRequestMessage clone)
    {
        clone.Content = null;
        clone.Dispose();
    }

    private static bool Contains(IReadOnlyCollection<string>? fields, string name)
    {
        if (fields is null)
        {
            return false;
        }

        foreach (var field in fields)
        {
            if (string.Equals(field, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
