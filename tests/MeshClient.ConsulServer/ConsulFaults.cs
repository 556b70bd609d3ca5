namespace MeshClient.ConsulServer;

/// <summary>A failure the test server can inject (reference/consul-http-api.md §5, §8.5).</summary>
public enum ConsulFault
{
    /// <summary>Normal answers.</summary>
    None,

    /// <summary>500 <c>No cluster leader</c>, text/plain (election in progress, quorum lost).</summary>
    NoClusterLeader,

    /// <summary>500 <c>rpc error making call: EOF</c> (servers restarting, seen through a client agent).</summary>
    RpcError,

    /// <summary>429 with an empty body (<c>limits.rpc_rate</c>).</summary>
    TooManyRequests,

    /// <summary>
    /// The raw connection-limit answer of go-connlimit: 429, <c>Connection: close</c>, text body, no X-Consul headers.
    /// </summary>
    ConnectionLimit,

    /// <summary>503 with a body (leader-only rate limit).</summary>
    ServiceUnavailable,

    /// <summary>The connection is reset before any answer.</summary>
    DropConnection,

    /// <summary>A 200 whose JSON body is larger than <see cref="ConsulFaultSettings.HugeBodyBytes"/> (chunked, no length).</summary>
    HugeBody,

    /// <summary>A 200 whose body is truncated JSON.</summary>
    MalformedBody,

    /// <summary>A 200 with a valid index whose body is <see cref="ConsulFaultSettings.Body"/>, whatever its bytes.</summary>
    Body,

    /// <summary>A 200 whose <c>X-Consul-Index</c> is not a number.</summary>
    MalformedIndex,

    /// <summary>A 200 with <c>X-Consul-Index: 0</c> (a Consul bug the docs tell clients to survive).</summary>
    ZeroIndex,

    /// <summary>Answers after <see cref="ConsulFaultSettings.Delay"/>, then trickles the body over another delay.</summary>
    Slow,

    /// <summary>
    /// Not Consul: a misbehaving proxy in front of it that echoes the request's ACL token in a 502 error body, to prove
    /// that clients mask it.
    /// </summary>
    EchoTokenInError,
}

/// <summary>The fault injection switches of a <see cref="ConsulTestServer"/>. Thread-safe; applies to new requests.</summary>
public sealed class ConsulFaultSettings
{
    private volatile Snapshot _current = new(ConsulFault.None, null, TimeSpan.Zero);

    /// <summary>Gets the active fault.</summary>
    public ConsulFault Fault => _current.Fault;

    /// <summary>Gets or sets the size of a <see cref="ConsulFault.HugeBody"/> answer. Default: 20 MiB.</summary>
    public int HugeBodyBytes { get; set; } = 20 * 1024 * 1024;

    /// <summary>Gets or sets the body of a <see cref="ConsulFault.Body"/> answer (malformed, wrong-typed, nested: anything).</summary>
    public byte[] Body { get; set; } = [];

    /// <summary>Gets the delay of <see cref="ConsulFault.Slow"/> and <see cref="ConsulFault.NoClusterLeader"/> (rpc_hold_timeout).</summary>
    public TimeSpan Delay => _current.Delay;

    /// <summary>Injects <paramref name="fault"/> into the requests whose path starts with <paramref name="pathPrefix"/> (default: every /v1/ path).</summary>
    public void Inject(ConsulFault fault, string? pathPrefix = null, TimeSpan delay = default) => _current = new(fault, pathPrefix, delay);

    /// <summary>Back to normal answers.</summary>
    public void Clear() => _current = new(ConsulFault.None, null, TimeSpan.Zero);

    internal (ConsulFault Fault, TimeSpan Delay) For(string path)
    {
        var current = _current;
        return current.Fault != ConsulFault.None && (current.PathPrefix is null || path.StartsWith(current.PathPrefix, StringComparison.Ordinal))
            ? (current.Fault, current.Delay)
            : (ConsulFault.None, TimeSpan.Zero);
    }

    private sealed record Snapshot(ConsulFault Fault, string? PathPrefix, TimeSpan Delay);
}
