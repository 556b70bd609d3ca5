namespace MeshClient.Balancing;

/// <summary>
/// Told how every attempt ended, and when an endpoint leaves discovery. Implemented by outlier detection
/// (Resilience), which ejects and readmits endpoints through <see cref="ServiceTable.SetStatus"/>; the balancer
/// never knows the rules.
/// </summary>
internal interface IEndpointHealthObserver
{
    void OnOutcome(ServiceTable table, EndpointEntry endpoint, AttemptOutcome outcome, bool wasProbe);

    void OnRemoved(EndpointState state);
}
