namespace MeshClient.Balancing;

internal sealed class MeshStatus(ServiceTableRegistry registry) : IMeshStatus
{
    public IReadOnlyList<MeshServiceStatus> GetServices()
    {
        var frequency = (double)registry.TimeProvider.TimestampFrequency;
        var services = new List<MeshServiceStatus>();
        foreach (var table in registry.Tables)
        {
            if (table.Snapshot is not { } snapshot)
            {
                continue;
            }

            var endpoints = snapshot.All.Select(e =>
            {
                var latency = e.State.LatencyEstimate;
                return new MeshEndpointStatus(
                    e.Id,
                    e.Address,
                    e.Weight,
                    e.Zone,
                    e.State.Status switch { EndpointStatus.Healthy => "healthy", EndpointStatus.Ejected => "ejected", _ => "probing" },
                    e.State.InFlight,
                    e.State.Requests,
                    latency > 0 ? TimeSpan.FromSeconds(latency / frequency) : null);
            }).ToList();
            services.Add(new MeshServiceStatus(table.ServiceName, snapshot.Policy.Name, snapshot.Panic, endpoints));
        }

        return services.OrderBy(s => s.Name, StringComparer.Ordinal).ToList();
    }
}
