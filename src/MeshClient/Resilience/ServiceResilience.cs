using MeshClient.Telemetry;

namespace MeshClient.Resilience;

/// <summary>The resilience of one service: its effective settings and its retry budget.</summary>
internal sealed class ServiceResilience(string serviceName, ResilienceSettings settings, RetryBudget budget, MeshInstrumentation telemetry)
{
    public string ServiceName { get; } = serviceName;

    public ResilienceSettings Settings { get; } = settings;

    public RetryBudget Budget { get; } = budget;

    /// <summary>
    /// Counts a retry when it is sent, after its backoff (<c>mesh.client.retries</c> and a <c>mesh.retry</c> event on
    /// the call's span): a retry decided but cancelled in its backoff never went out and is not counted.
    /// </summary>
    public void OnRetrySent(string reason)
    {
        telemetry.Retries.Add(1, new KeyValuePair<string, object?>(MeshTags.Service, ServiceName), new KeyValuePair<string, object?>(MeshTags.RetryReason, reason));
        MeshInstrumentation.AddEvent("mesh.retry", MeshTags.RetryReason, reason);
    }
}
