using Polly;

namespace MeshClient.Model;

/// <summary>
/// The state of one logical call across its attempts, as every feature reads it: which endpoints were tried, how
/// many attempts were made, which endpoint served the last one and with which policy. Created once per call by the
/// outermost mesh handler and carried on the request (one typed key). Each feature keeps its own part of the call
/// elsewhere: the retry state rides in Polly's <see cref="ResilienceContext"/> (<c>Resilience/RetryState</c>).
/// </summary>
internal sealed class MeshRequestContext
{
    public static readonly HttpRequestOptionsKey<MeshRequestContext> Key = new("MeshClient.RequestContext");

    private EndpointState?[] _tried = new EndpointState?[2];

    public MeshRequestContext(string serviceName)
    {
        ServiceName = serviceName;
    }

    public string ServiceName { get; }

    public int Attempts { get; private set; }

    public int TriedCount { get; private set; }

    public EndpointEntry? LastEndpoint { get; private set; }

    public string? Policy { get; private set; }

    /// <summary>
    /// Gets or sets the URI of the current attempt, as the balancer rewrote it: a connection opened for a request whose
    /// URI is another object (a redirect target) is not a connection to a mesh endpoint.
    /// </summary>
    public Uri? AttemptUri { get; set; }

    /// <summary>
    /// Gets or sets the pipeline around one attempt of this call (the service's attempt timeout), set by the retry
    /// handler and run by the attempt handler inside the balancer.
    /// </summary>
    public ResiliencePipeline<HttpResponseMessage>? AttemptPipeline { get; set; }

    /// <summary>Gets a value indicating whether the call has sent an attempt before the current one.</summary>
    public bool IsRetry => Attempts > 0;

    public bool HasTried(EndpointState state)
    {
        var tried = _tried;
        for (var i = 0; i < TriedCount; i++)
        {
            if (ReferenceEquals(tried[i], state))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Takes the context of a finished call off its request before a redirect hop: one to a pass-through host must not
    /// find the first service's retries, budget and timeouts there.
    /// </summary>
    public static void Remove(HttpRequestMessage request) =>
        ((IDictionary<string, object?>)request.Options).Remove(Key.Key);

    /// <summary>Notes the endpoint an attempt goes to (called by the picker when it hands out a lease).</summary>
    public void OnAttempt(EndpointEntry endpoint, string policy)
    {
        Attempts++;
        LastEndpoint = endpoint;
        Policy = policy;
        if (HasTried(endpoint.State))
        {
            return;
        }

        if (TriedCount == _tried.Length)
        {
            Array.Resize(ref _tried, TriedCount * 2);
        }

        _tried[TriedCount++] = endpoint.State;
    }
}
