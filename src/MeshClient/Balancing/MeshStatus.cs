namespace MeshClient.Balancing;

internal sealed class MeshStatus(ServiceTableRegistry registry) : IMeshStatus
{
    public IReadOnlyList<MeshServiceStatus> GetServices()
    {
        var frequency = (double)registry.TimeProvider.TimestampFrequency;
        var now = registry.TimeProvider.GetTimestamp();
        var options = registry.Options.Current;
        var services = new List<MeshServiceStatus>();
        foreach (var table in registry.Tables)
        {
            if (table.Snapshot is not { } snapshot)
            {
                continue;
            }

            options.Services.TryGetValue(table.ServiceName, out var service);
            var slowStart = SlowStart.Resolve(options.SlowStart, service?.SlowStart);
            var endpoints = snapshot.All.Select(e =>
            {
                var latency = e.State.LatencyEstimate;
                var since = e.State.SlowStartSince;
                var factor = since == 0 ? 1.0 : slowStart.Factor(registry.TimeProvider.GetElapsedTime(since, now));
                return new MeshEndpointStatus(
                    e.Id,
                    e.Address,
                    e.Weight,
                    e.Zone,
                    e.State.Status switch { EndpointStatus.Healthy => "healthy", EndpointStatus.Ejected => "ejected", _ => "probing" },
                    e.State.InFlight,
                    e.State.Requests,
                    latency > 0 ? TimeSpan.FromSeconds(latency / frequency) : null)
                {
                    SlowStartPercent = factor < 1.0 ? (int)Math.Round(factor * 100) : null,
                };
            }).ToList();
            services.Add(new MeshServiceStatus(table.ServiceName, snapshot.Policy.Name, snapshot.Panic, endpoints));
        }

        return services.OrderBy(s => s.Name, StringComparer.Ordinal).ToList();
    }
}
