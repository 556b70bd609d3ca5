using MeshClient.ConsulServer;
using MeshClient.Discovery;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.ServiceDiscovery;
using Xunit.Abstractions;

namespace MeshClient.Tests.Consul;

/// <summary>Discovery through a Consul-compatible server: blocking-query latency, health, weights, unknown services.</summary>
public sealed class ConsulDiscoveryTests(ITestOutputHelper output)
{
    private static readonly TimeSpan OneSecond = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task NewlyRegisteredInstance_ReceivesTraffic_WithinOneSecond()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web"));
        await using var mesh = ConsulTestHost.Create(consul);
        var client = mesh.CreateClient();
        (await client.GetAsync("http://web/")).EnsureSuccessStatusCode();
        await Eventually.TrueAsync(() => consul.WaitingQueries == 1, TimeSpan.FromSeconds(5), "the watch blocks on Consul");

        // The watch blocks for up to 30 s: only the blocking query's wake-up can deliver b within a second.
        consul.Register(Services.On(b, "web"));
        var elapsed = await Eventually.TrueAsync(async () =>
        {
            using var response = await client.GetAsync("http://web/");
            response.EnsureSuccessStatusCode();
            return b.Count > 0;
        }, OneSecond, "b receives traffic within 1 s of its registration");
        output.WriteLine($"first request to the new instance after {elapsed.TotalMilliseconds:F0} ms");
    }

    [Theory]
    [InlineData("deregister")]
    [InlineData("critical")]
    [InlineData("maintenance")]
    public async Task DeregisteredCriticalOrMaintenanceInstance_ReceivesNoTraffic_AfterOneSecond(string change)
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web", checks: Services.Ttl()));
        consul.Register(Services.On(b, "web", checks: Services.Ttl()));
        await using var mesh = ConsulTestHost.Create(consul);
        var client = mesh.CreateClient();
        await Load.RunAsync(20, 2, async _ => (await client.GetAsync("http://web/")).EnsureSuccessStatusCode());
        Assert.True(a.Count > 0 && b.Count > 0);

        switch (change)
        {
            case "deregister":
                Assert.True(consul.Deregister("b"));
                break;
            case "critical":
                Assert.True(consul.SetCheckStatus("service:b", "critical"));
                break;
            default:
                Assert.True(consul.SetMaintenance("b", enable: true, "draining"));
                break;
        }

        await Task.Delay(OneSecond); // the requirement's own bound, not a guess
        b.ResetCount();
        a.ResetCount();
        await Load.RunAsync(200, 4, async _ => (await client.GetAsync("http://web/")).EnsureSuccessStatusCode());
        Assert.Equal(0, b.Count);
        Assert.Equal(200, a.Count);
    }

    [Fact]
    public async Task WeightsChangedInConsul_ChangeTheDistribution()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web", weight: 1));
        consul.Register(Services.On(b, "web", weight: 1));
        await using var mesh = ConsulTestHost.Create(consul);
        var client = mesh.CreateClient();
        await Load.RunAsync(200, 1, async _ => (await client.GetAsync("http://web/")).EnsureSuccessStatusCode());
        Assert.InRange(b.Count, 90, 110);

        consul.Register(Services.On(b, "web", weight: 3));
        await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("web")).GetValueOrDefault("b") == 3, OneSecond, "the new weight is discovered");
        await Eventually.TrueAsync(async () =>
        {
            a.ResetCount();
            b.ResetCount();
            await Load.RunAsync(40, 1, async _ => (await client.GetAsync("http://web/")).EnsureSuccessStatusCode());
            return b.Count == 30;
        }, OneSecond, "the balancer applies the new weight");

        a.ResetCount();
        b.ResetCount();
        await Load.RunAsync(200, 1, async _ => (await client.GetAsync("http://web/")).EnsureSuccessStatusCode());
        Assert.Equal(200, a.Count + b.Count);
        Assert.InRange(b.Count / 200.0, 0.70, 0.80);
    }

    [Fact]
    public async Task WarningInstances_AreDiscoveredWithTheirWarningWeight_OnlyWhenOnlyPassingIsFalse()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web", weight: 1));
        consul.Register(Services.On(b, "web", weight: 5, warningWeight: 3, checks: Services.Ttl("warning")));

        await using (var strict = ConsulTestHost.Create(consul))
        {
            Assert.Equal(["a"], (await strict.EndpointsAsync("web")).Keys.Order());
        }

        await using var lenient = ConsulTestHost.Create(consul, s => s["Mesh:Consul:OnlyPassing"] = "false");
        var endpoints = await lenient.EndpointsAsync("web");
        Assert.Equal(1, endpoints["a"]);
        Assert.Equal(3, endpoints["b"]);

        // Warning weight 0: left out, like DNS does.
        consul.Register(Services.On(b, "web", weight: 5, warningWeight: 0, checks: Services.Ttl("warning")));
        await Eventually.TrueAsync(async () => !(await lenient.EndpointsAsync("web")).ContainsKey("b"), OneSecond, "a warning instance with Warning weight 0 is left out");
    }

    [Fact]
    public async Task ServiceConsulDoesNotKnow_IsUnknown_ButAKnownServiceWithoutHealthyInstance_HasNoHealthyEndpoint()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "sick", checks: Services.Ttl("critical")));
        await using var mesh = ConsulTestHost.Create(consul);
        var client = mesh.CreateClient();

        var unknown = await Assert.ThrowsAsync<UnknownServiceException>(() => client.GetAsync("http://ghost/"));
        Assert.Contains("Consul", unknown.Providers);
        await Assert.ThrowsAsync<NoHealthyEndpointException>(() => client.GetAsync("http://sick/"));

        // The critical instance recovers: traffic flows without any restart.
        consul.SetCheckStatus("service:a", "passing");
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                using var response = await client.GetAsync("http://sick/");
                return response.IsSuccessStatusCode;
            }
            catch (NoHealthyEndpointException)
            {
                return false;
            }
        }, OneSecond, "the recovered instance takes traffic");
    }

    [Fact]
    public async Task StaticEndpointsInMeshConfiguration_WinOverConsul_AndOpenNoWatch()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(b, "web"));
        await using var mesh = ConsulTestHost.Create(consul, s => s["Mesh:Services:web:Endpoints:0:Address"] = a.Address.ToString());
        var client = mesh.CreateClient();
        await Load.RunAsync(20, 1, async _ => (await client.GetAsync("http://web/")).EnsureSuccessStatusCode());
        Assert.Equal(20, a.Count);
        Assert.Equal(0, b.Count);
        Assert.Equal(0, consul.CountRequests("/v1/health/service/web"));
    }

    [Fact]
    public async Task DottedHostNames_AreNeverLookedUpInConsul()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync();
        await using var mesh = ConsulTestHost.Create(consul);
        var client = mesh.CreateClient();
        client.Timeout = TimeSpan.FromSeconds(5);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetAsync($"http://not-here.invalid:{a.Port}/"));
        Assert.Equal(0, consul.CountRequests("/v1/health/service/"));
    }

    [Fact]
    public async Task ServiceAddressFallsBackToNodeAddress_ZoneAndSchemeComeFromMeta()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.AddNode("node-b", "127.0.0.1", new() { ["zone"] = "eu-1b" });
        consul.Register(new ServiceDefinition { Id = "a", Name = "web", Port = a.Port, Meta = new() { ["zone"] = "eu-1a" } });
        consul.RegisterOnNode("node-b", new ServiceDefinition { Id = "a", Name = "web", Port = a.Port, Meta = null });
        await using var mesh = ConsulTestHost.Create(consul);
        var resolver = mesh.Services.GetRequiredService<ServiceEndpointResolver>();
        var source = await resolver.GetEndpointsAsync("http://web", CancellationToken.None);
        var endpoints = source.Endpoints
            .Select(e => (Feature: e.Features.Get<IMeshEndpointFeature>()!, Uri: ((UriEndPoint)e.EndPoint).Uri))
            .OrderBy(e => e.Feature.Id, StringComparer.Ordinal)
            .ToList();

        // Same Service.ID on two nodes: ids are qualified by node so both survive.
        Assert.Equal(["consul-test-node/a", "node-b/a"], endpoints.Select(e => e.Feature.Id));
        Assert.All(endpoints, e => Assert.Equal(new Uri($"http://127.0.0.1:{a.Port}/"), e.Uri));
        Assert.Equal("eu-1a", endpoints[0].Feature.Zone);
        Assert.Equal("eu-1b", endpoints[1].Feature.Zone); // from Node.Meta when Service.Meta is null
        Assert.NotNull(source.Features.Get<IMeshServiceFeature>());
    }
}
