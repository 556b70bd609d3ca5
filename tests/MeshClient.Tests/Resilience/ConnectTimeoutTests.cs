using System.Diagnostics;
using System.Net;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace MeshClient.Tests.Resilience;

/// <summary>
/// An endpoint whose node is gone (connection attempts unanswered, not refused) costs a call at most the connect
/// timeout: the attempt is requeued at once elsewhere and the endpoint ejected as unreachable. Before, SocketsHttpHandler's
/// infinite ConnectTimeout held such attempts until the attempt timeout: 8 of 2,000 GETs took 10.0–10.1 s each.
/// </summary>
public sealed class ConnectTimeoutTests(ITestOutputHelper output)
{
    private static EndpointState State(MeshHost host, int port) =>
        host.Registry.GetTable("catalog").States.Single(s => s.Id.Contains($":{port}", StringComparison.Ordinal));

    [Fact]
    public async Task OneOfFourEndpointsDropsSyns_WithDefaults_EveryGetSucceeds_NoneWaitsSeconds()
    {
        await using var backends = await Backends.StartAsync(3);
        using var hole = await BlackHole.CreateAsync();
        var settings = MeshHost.ServiceSettings("catalog", policy: null, backends.WithWeight(1));
        settings["Mesh:Services:catalog:Endpoints:3:Address"] = hole.Address.ToString();
        await using var host = MeshHost.Create(settings);
        var client = host.CreateClient();

        const int Total = 2000;
        var durations = new double[Total];
        await Load.RunAsync(Total, concurrency: 8, async i =>
        {
            var started = Stopwatch.GetTimestamp();
            using var response = await client.GetAsync("http://catalog/items");
            durations[i] = Stopwatch.GetElapsedTime(started).TotalSeconds;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }, TimeSpan.FromSeconds(90));

        var slow = durations.Count(d => d > 1.0);
        output.WriteLine($"max {durations.Max():0.000} s, over 1 s: {slow}, over 3 s: {durations.Count(d => d > 3.0)}, backends {string.Join('/', backends.Select(b => b.Count))}");
        Assert.Equal(Total, backends.Sum(b => b.Count));
        Assert.True(durations.Max() <= 3.0, $"the slowest call took {durations.Max():0.000} s");
        Assert.InRange(slow, 0, Total / 100);
        Assert.True(State(host, hole.Port).Unreachable, "the endpoint was ejected as unreachable");
    }

    [Fact]
    public async Task PerServiceConnectTimeout_OverridesTheGlobalOne()
    {
        await using var backends = await Backends.StartAsync(1);
        using var hole = await BlackHole.CreateAsync();
        var settings = MeshHost.ServiceSettings("catalog", LoadBalancerNames.RoundRobin, backends.WithWeight(1));
        settings["Mesh:Services:catalog:Endpoints:1:Address"] = hole.Address.ToString();
        settings["Mesh:Resilience:ConnectTimeout"] = "00:00:08";
        settings["Mesh:Services:catalog:Resilience:ConnectTimeout"] = "00:00:00.200";
        await using var host = MeshHost.Create(settings);
        var client = host.CreateClient();

        // Round robin sends one of the first two calls to the hole: it is requeued after 200 ms, not 8 s.
        for (var i = 0; i < 2; i++)
        {
            var started = Stopwatch.GetTimestamp();
            using var response = await client.GetAsync("http://catalog/items");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.True(Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(4), $"call {i} took {Stopwatch.GetElapsedTime(started)}");
        }

        Assert.True(State(host, hole.Port) is { Status: EndpointStatus.Ejected, Unreachable: true });
    }

    [Fact]
    public async Task AConnectTimeoutTheApplicationSet_Wins_AndIsRequeuedLikeARefusal()
    {
        await using var backends = await Backends.StartAsync(1);
        using var hole = await BlackHole.CreateAsync();
        var settings = MeshHost.ServiceSettings("catalog", LoadBalancerNames.RoundRobin, backends.WithWeight(1));
        settings["Mesh:Services:catalog:Endpoints:1:Address"] = hole.Address.ToString();
        settings["Mesh:Resilience:ConnectTimeout"] = "00:00:08";
        await using var host = MeshHost.Create(settings, services => services.AddHttpClient("test")
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromMilliseconds(200) }));
        var client = host.CreateClient();

        // .NET reports the handler's ConnectTimeout as a TaskCanceledException around a TimeoutException; the mesh
        // takes it for what it is (nothing was sent), not for a cancellation: the call goes on elsewhere at once.
        for (var i = 0; i < 2; i++)
        {
            var started = Stopwatch.GetTimestamp();
            using var response = await client.GetAsync("http://catalog/items");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.True(Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(4), $"call {i} took {Stopwatch.GetElapsedTime(started)}");
        }

        Assert.True(State(host, hole.Port) is { Status: EndpointStatus.Ejected, Unreachable: true });
        Assert.Equal(2, backends[0].Count);
    }

    [Fact]
    public async Task TheCallersCancellationWhileConnecting_IsACancellation_NotAnUnreachableEndpoint()
    {
        using var hole = await BlackHole.CreateAsync();
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Endpoints:0:Address"] = hole.Address.ToString(),
            ["Mesh:Resilience:ConnectTimeout"] = "00:00:05",
        };
        await using var host = MeshHost.Create(settings);
        var client = host.CreateClient();

        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var ex = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetAsync("http://catalog/items", cancel.Token));
        Assert.True(cancel.IsCancellationRequested, ex.ToString());
        Assert.True(State(host, hole.Port) is { Status: EndpointStatus.Healthy, Unreachable: false, ConsecutiveFailures: 0 });
    }
}
