using MeshClient.Balancing;
using MeshClient.Discovery;
using MeshClient.Model;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Tests.Infrastructure;

internal static class SnapshotFactory
{
    public static EndpointEntry Entry(string address, int weight, string? zone = null, EndpointState? state = null)
    {
        var features = new FeatureCollection();
        features.Set<IMeshEndpointFeature>(new MeshEndpointFeature(address, weight, zone));
        return EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri(address)), features), id => state ?? new EndpointState(id))!;
    }

    public static EndpointSnapshot Snapshot(LoadBalancingPolicy policy, params EndpointEntry[] entries) =>
        new("svc", entries, entries, policy, panic: false, roundRobinStart: 0);

    public static EndpointSnapshot Snapshot(LoadBalancingPolicy policy, params int[] weights) =>
        Snapshot(policy, [.. weights.Select((w, i) => Entry($"http://10.0.0.{i + 1}:80", w))]);
}
