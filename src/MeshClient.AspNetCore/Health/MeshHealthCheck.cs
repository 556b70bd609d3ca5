using MeshClient.Balancing;
using MeshClient.Status;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace MeshClient.AspNetCore.Health;

/// <summary>
/// The health of the services the mesh is calling: Unhealthy (the registration's failure status) while one of them
/// has no healthy endpoint, Degraded while one has endpoints out (ejected, unreachable or probing), Healthy
/// otherwise. The description and the data name the services and endpoints concerned. A service with routes and no
/// endpoints of its own is judged through its backends, which are services of their own.
/// </summary>
internal sealed class MeshHealthCheck(IMeshStatus status) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var failureStatus = context.Registration?.FailureStatus ?? HealthStatus.Unhealthy;
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var down = new List<string>();
        var degraded = new List<string>();
        var services = status.GetServices();
        foreach (var service in services)
        {
            if (service.Endpoints.Count == 0 && service.Routes.Count > 0)
            {
                continue; // a routed service without endpoints of its own: its backends are judged, each as a service
            }

            var healthy = service.Endpoints.Count(e => e.State == "healthy");
            var notHealthy = service.Endpoints.Where(e => e.State != "healthy").ToList();
            if (healthy == 0)
            {
                down.Add(service.Name);
                data[service.Name] = service.Endpoints.Count == 0
                    ? "no endpoint"
                    : $"no healthy endpoint: {Describe(notHealthy)}";
            }
            else if (notHealthy.Count > 0)
            {
                degraded.Add(service.Name);
                data[service.Name] = $"{notHealthy.Count} of {service.Endpoints.Count} endpoints out: {Describe(notHealthy)}";
            }
        }

        if (down.Count > 0)
        {
            var description = $"No healthy endpoint in {string.Join(", ", down)}" +
                (degraded.Count > 0 ? $"; endpoints out in {string.Join(", ", degraded)}." : ".");
            return Task.FromResult(new HealthCheckResult(failureStatus, description, data: data));
        }

        if (degraded.Count > 0)
        {
            return Task.FromResult(HealthCheckResult.Degraded($"Endpoints out in {string.Join(", ", degraded)}: {string.Join("; ", degraded.Select(s => $"{s}: {data[s]}"))}.", data: data));
        }

        return Task.FromResult(HealthCheckResult.Healthy($"{services.Count} service(s), every endpoint healthy."));
    }

    private static string Describe(IEnumerable<MeshEndpointStatus> endpoints) =>
        string.Join(", ", endpoints.Select(e => $"{e.Address} ({e.State})"));
}
