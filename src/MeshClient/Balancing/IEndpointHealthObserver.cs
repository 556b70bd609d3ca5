using MeshClient.Model;

namespace MeshClient.Balancing;

/// <summary>
/// Told how every attempt ended, when an endpoint leaves discovery, and when a service's table is evicted. Implemented by outlier detection
/// (Resilience), which ejects and readmits endpoints through <see cref="ServiceTable.SetStatus"/>; the balancer
/// never knows the rules.
/// </summary>
internal interface IEndpointHealthObserver
{
    void OnOutcome(ServiceTable table, EndpointEntry endpoint, AttemptOutcome outcome, bool wasProbe);

    /// <summary>
    /// The endpoint answered a 503 or 429 with <c>Retry-After</c> (after <see cref="OnOutcome"/> for the same attempt):
    /// it asked not to be called for <paramref name="retryAfter"/>.
    /// </summary>
    void OnRetryAfter(ServiceTable table, EndpointEntry endpoint, TimeSpan retryAfter);

    void OnRemoved(EndpointState state);

    /// <summary>The table of <paramref name="serviceName"/> was evicted (not called for the idle timeout): drop what is kept for it.</summary>
    void OnServiceRemoved(string serviceName);
}
