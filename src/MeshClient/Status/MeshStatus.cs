using MeshClient.Balancing;
using MeshClient.Model;
using MeshClient.Configuration;
using MeshClient.Resilience;
using MeshClient.Routing;

namespace MeshClient.Status;

internal sealed class MeshStatus(ServiceTableRegistry registry, ResilienceRegistry resilience, MeshRouter router) : IMeshStatus
{
    public IReadOnlyList<MeshServiceStatus> GetServices()
    {
        var time = registry.TimeProvider;
        var frequency = (double)time.TimestampFrequency;
        var now = time.GetTimestamp();
        var options = registry.Options.Current;
        var services = new List<MeshServiceStatus>();
        var routed = router.Tables;
        foreach (var table in registry.Tables)
        {
            if (table.Snapshot is not { } snapshot)
            {
                continue;
            }

            options.Services.TryGetValue(table.ServiceName, out var service);
            var slowStart = SlowStartRamp.Resolve(options.SlowStart, service?.SlowStart);
            var endpoints = snapshot.All.Select(e =>
            {
                var state = e.State;
                var latency = state.LatencyEstimate;
                var since = state.SlowStartSince;
                var factor = since == 0 ? 1.0 : slowStart.Factor(time.GetElapsedTime(since, now));
                var status = state.Status;
                var (requests, failures) = state.LastMinute?.Sum() ?? (0, 0);
                TimeSpan? left = null;
                if (status == EndpointStatus.Ejected)
                {
                    var until = state.EjectedUntil;
                    left = until > now ? TimeSpan.FromSeconds((until - now) / frequency) : TimeSpan.Zero;
                }

                return new MeshEndpointStatus(
                    e.Id,
                    e.Address,
                    e.Weight,
                    e.Zone,
                    status switch
                    {
                        EndpointStatus.Healthy => "healthy",
                        EndpointStatus.Ejected => state.Unreachable ? "unreachable" : "ejected",
                        _ => "probing",
                    },
                    state.InFlight + state.OpenStreams, // an open gRPC stream is in flight too
                    state.Requests,
                    latency > 0 ? TimeSpan.FromSeconds(latency / frequency) : null)
                {
                    SlowStartPercent = factor < 1.0 ? (int)Math.Round(factor * 100) : null,
                    EffectiveWeight = Math.Round(e.Weight * factor, 2),
                    EjectionTimeLeft = left,
                    RequestsLastMinute = requests,
                    FailuresLastMinute = failures,
                };
            }).ToList();

            var discovery = table.Discovery;
            MeshRetryBudgetStatus? budget = null;
            if (resilience.FindBudget(table.ServiceName) is { } retryBudget)
            {
                var (budgetRequests, retries, allowed) = retryBudget.Usage();
                budget = new MeshRetryBudgetStatus(retryBudget.Window, budgetRequests, retries, Math.Round(allowed, 2));
            }

            services.Add(new MeshServiceStatus(table.ServiceName, snapshot.Policy.Name, snapshot.Panic, endpoints)
            {
                DiscoverySource = discovery?.Source,
                LastUpdated = discovery?.Updated,
                LastRefreshed = discovery?.Refreshed,
                DiscoveryError = table.LastError?.Message,
                RetryBudget = budget,
                Routes = routed.TryGetValue(table.ServiceName, out var routes) ? Routes(routes) : [],
            });
        }

        // A routed service without endpoints of its own has no table: it is listed for its routes.
        foreach (var (name, routes) in routed)
        {
            if (!services.Any(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase)))
            {
                options.Services.TryGetValue(name, out var service);
                var policy = LoadBalancerNames.Normalize(service?.LoadBalancer ?? options.LoadBalancer) ?? options.LoadBalancer;
                services.Add(new MeshServiceStatus(name, policy, Panic: false, []) { Routes = Routes(routes) });
            }
        }

        return services.OrderBy(s => s.Name, StringComparer.Ordinal).ToList();
    }

    private static IReadOnlyList<MeshRouteStatus> Routes(RouteTable table) =>
        [.. table.Routes.Select(route => new MeshRouteStatus(
            route.Name,
            [.. route.Shares().Select(s => new MeshRouteBackendStatus(s.Backend.Service, s.Backend.Weight, s.Share, s.Availability switch
            {
                BackendAvailability.Available => "healthy",
                BackendAvailability.Pending => "pending",
                BackendAvailability.Probing => "probing",
                _ => "down",
            }))])
        {
            Match = route.Match.Describe(),
            Timeout = route.Timeout,
        })];
}
