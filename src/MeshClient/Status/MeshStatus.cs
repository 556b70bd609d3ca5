using MeshClient.Balancing;
using MeshClient.Model;
using MeshClient.Configuration;
using MeshClient.Hedging;
using MeshClient.Resilience;
using MeshClient.Routing;

namespace MeshClient.Status;

internal sealed class MeshStatus(ServiceTableRegistry registry, ResilienceRegistry resilience, MeshRouter router, HedgingRegistry hedging) : IMeshStatus
{
    public string? Zone => registry.Options.Current.Zone;

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
            var zones = snapshot.Zones;
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
                    Locality = zones is null ? null : zones.IsLocalEndpoint(e) ? "local" : "remote",
                };
            }).ToList();

            var discovery = table.Discovery;
            services.Add(new MeshServiceStatus(table.ServiceName, snapshot.Policy.Name, snapshot.Panic, endpoints)
            {
                DiscoverySource = discovery?.Source,
                LastUpdated = discovery?.Updated,
                LastRefreshed = discovery?.Refreshed,
                DiscoveryError = table.LastError?.Message,
                RetryBudget = resilience.FindBudget(table.ServiceName) is { } retryBudget ? Usage(retryBudget) : null,
                Hedging = hedging.AnyEnabled ? Hedging(hedging.Get(table.ServiceName), now) : null, // Get builds a policy: not for a mesh that never hedges
                ZoneRouting = ZoneRouting(options, service, snapshot),
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

    private static MeshHedgingStatus? Hedging(HedgingPolicy policy, long now)
    {
        if (!policy.Settings.Enabled)
        {
            return null;
        }

        return new MeshHedgingStatus(policy.Delay(now), policy.Settings.Percentile, policy.Settings.MaxAttempts, Usage(policy.Budget));
    }

    /// <summary>The use of a budget over its window (a retry budget, or a hedge budget whose withdrawals are hedges).</summary>
    private static MeshRetryBudgetStatus Usage(RetryBudget budget)
    {
        var (requests, withdrawals, allowed) = budget.Usage();
        return new MeshRetryBudgetStatus(budget.Window, requests, withdrawals, Math.Round(allowed, 2));
    }

    private static MeshZoneRoutingStatus? ZoneRouting(Configuration.MeshOptions options, Configuration.MeshServiceOptions? service, EndpointSnapshot snapshot)
    {
        if (ZoneRoutingSettings.Resolve(options, service) is not { } settings)
        {
            return null;
        }

        if (snapshot.Zones is not { } zones)
        {
            return new MeshZoneRoutingStatus(settings.Zone, Active: false, Spill: 0);
        }

        var reading = zones.Balance.Read();
        var spill = zones.Local is null ? 1.0 : Math.Max(reading.Spill, zones.MinSpill);
        return new MeshZoneRoutingStatus(zones.Zone, Active: true, Math.Round(spill, 3))
        {
            LocalShare = reading.LocalShare is { } share ? Math.Round(share, 3) : null,
            LocalLatency = reading.LocalSeconds is { } local ? TimeSpan.FromSeconds(local) : null,
            RemoteLatency = reading.RemoteSeconds is { } remote ? TimeSpan.FromSeconds(remote) : null,
            LatencyRatio = reading.Ratio is { } ratio ? Math.Round(ratio, 2) : null,
            LocalEndpoints = zones.LocalCount,
            HealthyLocalEndpoints = zones.Local?.Active.Length ?? 0,
        };
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
