using MeshClient.KubernetesServer;
using MeshClient.Status;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Tests.Kubernetes;

/// <summary>
/// Zone routing over EndpointSlices: an endpoint's <c>zone</c> decides its locality, unless the slice gives
/// <c>hints.forZones</c> (topology-aware routing): then the endpoints hinted for the caller's zone are its zone's,
/// whatever their own zone, and one hinted only for other zones is not.
/// </summary>
public sealed class KubernetesZoneTests
{
    [Fact]
    public async Task HintsForZones_DecideWhichEndpointsAreLocal_OverTheEndpointsOwnZone()
    {
        await using var pods = await Pods.StartAsync(4);
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply("shop", Slices.Http("catalog", "catalog-a", pods.Port,
            new PodEndpoint("pod-0", pods["pod-0"].Address.ToString(), Zone: "zone-a", ForZones: ["zone-a"]),
            new PodEndpoint("pod-1", pods["pod-1"].Address.ToString(), Zone: "zone-b", ForZones: ["zone-a"]),
            new PodEndpoint("pod-2", pods["pod-2"].Address.ToString(), Zone: "zone-a", ForZones: ["zone-b"]),
            new PodEndpoint("pod-3", pods["pod-3"].Address.ToString(), Zone: "zone-b", ForZones: ["zone-b"])));
        await using var mesh = KubernetesTestHost.Create(server, s => s["Mesh:Zone"] = "zone-a");

        var counts = await CallAsync(mesh, pods, 400);

        // pod-1 (zone-b, hinted for zone-a) is local; pod-2 (zone-a, hinted for zone-b) is not. Some calls may be probes
        // of the other zone (at most one per 10 calls until it is measured).
        Assert.True(counts["pod-0"] + counts["pod-1"] >= 360, Describe(counts));
        Assert.InRange(counts["pod-0"], 120, 280);
        Assert.Equal(
            [("pod-0", "local"), ("pod-1", "local"), ("pod-2", "remote"), ("pod-3", "remote")],
            Localities(mesh));
    }

    [Fact]
    public async Task WithoutHints_TheEndpointsOwnZoneDecides()
    {
        await using var pods = await Pods.StartAsync(4);
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply("shop", Slices.Http("catalog", "catalog-a", pods.Port,
            new PodEndpoint("pod-0", pods["pod-0"].Address.ToString(), Zone: "zone-a"),
            new PodEndpoint("pod-1", pods["pod-1"].Address.ToString(), Zone: "zone-b"),
            new PodEndpoint("pod-2", pods["pod-2"].Address.ToString(), Zone: "zone-a"),
            new PodEndpoint("pod-3", pods["pod-3"].Address.ToString(), Zone: "zone-b")));
        await using var mesh = KubernetesTestHost.Create(server, s => s["Mesh:Zone"] = "zone-a");

        var counts = await CallAsync(mesh, pods, 400);

        Assert.True(counts["pod-0"] + counts["pod-2"] >= 360, Describe(counts));
        Assert.Equal(
            [("pod-0", "local"), ("pod-1", "remote"), ("pod-2", "local"), ("pod-3", "remote")],
            Localities(mesh));
    }

    private static async Task<Dictionary<string, int>> CallAsync(KubernetesTestHost mesh, Pods pods, int calls)
    {
        var client = mesh.CreateClient();
        for (var i = 0; i < calls; i++)
        {
            using var response = await client.GetAsync(new Uri("http://catalog/"));
            response.EnsureSuccessStatusCode();
        }

        return pods.All.ToDictionary(p => p.Name, p => p.Count);
    }

    private static (string, string?)[] Localities(KubernetesTestHost mesh) =>
        [.. mesh.Services.GetRequiredService<IMeshStatus>().GetServices().Single(s => s.Name == "catalog").Endpoints
            .OrderBy(e => e.Id, StringComparer.Ordinal).Select(e => (e.Id, e.Locality))];

    private static string Describe(Dictionary<string, int> counts) => string.Join(", ", counts.OrderBy(c => c.Key).Select(c => $"{c.Key} {c.Value}"));
}
