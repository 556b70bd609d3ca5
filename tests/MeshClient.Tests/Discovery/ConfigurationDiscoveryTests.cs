using System.Net;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Tests.Discovery;

/// <summary>Discovery from Mesh:Services and the standard Services section, and configuration reload.</summary>
public sealed class ConfigurationDiscoveryTests
{
    [Fact]
    public async Task Reload_MovesTrafficToTheNewEndpointSet_WithoutDisturbingRequestsInFlight()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var c = await TestBackend.StartAsync("c");
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", "RoundRobin", (a, 1), (b, 1)));
        var client = host.CreateClient();

        for (var i = 0; i < 20; i++)
        {
            (await client.GetAsync("http://catalog/")).EnsureSuccessStatusCode();
        }

        Assert.Equal(10, a.Count);
        Assert.Equal(10, b.Count);

        // A slow request is in flight on "a" while the configuration changes.
        a.Behavior = async ctx => { await release.Task; await ctx.Response.WriteAsync("a-late"); };
        var inFlight = client.GetStringAsync("http://catalog/slow");
        await Poll.UntilAsync(() => a.Count == 11 || b.Count == 11);
        if (b.Count == 11)
        {
            // Round robin sent it to b; send once more so that a holds one.
            var extra = client.GetStringAsync("http://catalog/slow");
            inFlight = Task.WhenAll(inFlight, extra).ContinueWith(t => t.Result[0], TaskScheduler.Default);
            await Poll.UntilAsync(() => a.Count == 11);
        }

        host.Configuration.Replace(MeshHost.ServiceSettings("catalog", "RoundRobin", (c, 1)));
        await Poll.UntilAsync(async () => (await client.GetAsync("http://catalog/")).Headers.GetValues("X-Backend").Single() == "c");

        a.ResetCount();
        b.ResetCount();
        c.ResetCount();
        for (var i = 0; i < 30; i++)
        {
            (await client.GetAsync("http://catalog/")).EnsureSuccessStatusCode();
        }

        Assert.Equal(30, c.Count);
        Assert.Equal(0, a.Count + b.Count);

        release.SetResult();
        Assert.NotNull(await inFlight);
        Assert.All(host.Registry.GetTable("catalog").States, s => Assert.Equal(0, s.InFlight));
    }

    /// <summary>
    /// Regression: a service idle for longer than the resolver keeps its watcher (two of its 10 s cleanups) lost the
    /// reload hook with it, so a reload left its table on the old endpoints; its next calls went to an endpoint the
    /// configuration no longer has, until a refresh tick after that call. Every table is now refreshed on a reload.
    /// </summary>
    [Fact]
    public async Task Reload_ReachesAServiceIdleLongerThanTheResolverKeepsItsWatcher()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        var time = FakeTime.Create();
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", "RoundRobin", (a, 1)), services => services.AddSingleton<TimeProvider>(time));
        var client = host.CreateClient();
        Assert.Equal("a", await client.GetStringAsync("http://catalog/"));

        // Idle: the resolver's cleanup (every 10 s of the fake clock) drops the service's watcher; the table stays.
        for (var i = 0; i < 6; i++)
        {
            time.Advance(TimeSpan.FromSeconds(10));
            await Task.Delay(20);
        }

        host.Configuration.Replace(MeshHost.ServiceSettings("catalog", "RoundRobin", (b, 1)));
        var table = Assert.Single(host.Registry.Tables);
        await Poll.UntilAsync(() => table.Snapshot is { All: [var only] } && only.Address.EndsWith($":{b.Port}", StringComparison.Ordinal));
        Assert.Equal("b", await client.GetStringAsync("http://catalog/"));
        Assert.Equal(1, a.Count);
    }

    [Fact]
    public async Task Reload_ChangesWeights()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", "RoundRobin", (a, 1), (b, 1)));
        var client = host.CreateClient();
        (await client.GetAsync("http://catalog/")).EnsureSuccessStatusCode();

        host.Configuration.Replace(MeshHost.ServiceSettings("catalog", "RoundRobin", (a, 1), (b, 3)));
        await Poll.UntilAsync(() => host.Registry.GetTable("catalog").Snapshot?.TotalWeight == 4);
        a.ResetCount();
        b.ResetCount();
        for (var i = 0; i < 40; i++)
        {
            (await client.GetAsync("http://catalog/")).EnsureSuccessStatusCode();
        }

        Assert.Equal(10, a.Count);
        Assert.Equal(30, b.Count);
    }

    [Fact]
    public async Task StandardServicesSection_IsDiscovered_WithWeightOne()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var host = MeshHost.Create(new Dictionary<string, string?>
        {
            ["Mesh:LoadBalancer"] = "RoundRobin",
            ["Services:inventory:http:0"] = a.Address.ToString(),
            ["Services:inventory:http:1"] = b.Address.ToString(),
        });
        var client = host.CreateClient();
        for (var i = 0; i < 10; i++)
        {
            (await client.GetAsync("http://inventory/stock")).EnsureSuccessStatusCode();
        }

        Assert.Equal(5, a.Count);
        Assert.Equal(5, b.Count);
    }

    [Fact]
    public async Task MeshSection_WinsOverTheStandardSection()
    {
        await using var mesh = await TestBackend.StartAsync("mesh");
        await using var standard = await TestBackend.StartAsync("standard");
        var settings = MeshHost.ServiceSettings("catalog", null, (mesh, 1));
        settings["Services:catalog:http:0"] = standard.Address.ToString();
        await using var host = MeshHost.Create(settings);
        var client = host.CreateClient();
        for (var i = 0; i < 5; i++)
        {
            (await client.GetAsync("http://catalog/")).EnsureSuccessStatusCode();
        }

        Assert.Equal(5, mesh.Count);
        Assert.Equal(0, standard.Count);
    }

    [Fact]
    public async Task UnknownSingleLabelService_FailsFast_NamingTheServiceAndTheProviders()
    {
        await using var host = MeshHost.Create(new Dictionary<string, string?>());
        var client = host.CreateClient();

        var started = TimeProvider.System.GetTimestamp();
        var ex = await Assert.ThrowsAsync<UnknownServiceException>(() => client.GetAsync("http://payments/charge"));
        Assert.True(TimeProvider.System.GetElapsedTime(started) < TimeSpan.FromSeconds(5));
        Assert.Equal("payments", ex.ServiceName);
        Assert.Contains("'payments'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Mesh configuration (Mesh:Services)", ex.Message, StringComparison.Ordinal);
        Assert.Contains("configuration (Services)", ex.Message, StringComparison.Ordinal);
        Assert.IsAssignableFrom<MeshException>(ex);
    }

    [Fact]
    public async Task IpLiteralAndLocalhost_PassThroughUntouched()
    {
        await using var backend = await TestBackend.StartAsync("direct");
        await using var host = MeshHost.Create(new Dictionary<string, string?>());
        var client = host.CreateClient();

        Assert.Equal("direct", await client.GetStringAsync($"http://127.0.0.1:{backend.Port}/a"));
        Assert.Equal("direct", await client.GetStringAsync($"http://localhost:{backend.Port}/b"));
        Assert.Equal(2, backend.Count);
        Assert.Empty(host.Registry.Tables);
    }

    [Fact]
    public async Task UnknownDottedName_PassesThroughUntouched()
    {
        var seen = new List<Uri>();
        await using var host = MeshHost.Create(new Dictionary<string, string?>(), services =>
            services.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => new RecordingHandler(seen)));
        var client = host.CreateClient();

        using var response = await client.GetAsync("http://api.example.com/v1/things?id=7");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new Uri("http://api.example.com/v1/things?id=7"), Assert.Single(seen));
    }

    [Fact]
    public async Task KnownDottedName_IsBalanced()
    {
        await using var backend = await TestBackend.StartAsync("b");
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("orders.internal", null, (backend, 1)));
        Assert.Equal("b", await host.CreateClient().GetStringAsync("http://orders.internal/x"));
    }

    [Fact]
    public async Task EndpointPathBase_PrefixesTheRequestPath_AndTheOriginalUriIsRestored()
    {
        await using var backend = await TestBackend.StartAsync("b");
        await using var host = MeshHost.Create(new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Endpoints:0:Address"] = new Uri(backend.Address, "/api/v2/").ToString(),
            ["Mesh:Services:catalog:Endpoints:0:HostName"] = "catalog.example.com",
        });
        using var request = new HttpRequestMessage(HttpMethod.Get, "http://catalog/items/42?color=red");

        using var response = await host.CreateClient().SendAsync(request);

        response.EnsureSuccessStatusCode();
        var seen = Assert.Single(backend.Requests);
        Assert.Equal("/api/v2/items/42?color=red", seen.PathAndQuery);
        Assert.Equal("catalog.example.com", seen.Host);
        Assert.Equal(new Uri("http://catalog/items/42?color=red"), request.RequestUri);
        Assert.Null(request.Headers.Host);
    }

    [Fact]
    public async Task OptInPerClient_WhenApplyToAllHttpClientsIsOff()
    {
        await using var backend = await TestBackend.StartAsync("b");
        var settings = MeshHost.ServiceSettings("catalog", null, (backend, 1));
        settings["Mesh:ApplyToAllHttpClients"] = "false";
        await using var host = MeshHost.Create(settings, services => services.AddHttpClient("meshed").AddMesh());

        Assert.Equal("b", await host.CreateClient("meshed").GetStringAsync("http://catalog/"));
        await Assert.ThrowsAsync<HttpRequestException>(() => host.CreateClient("plain").GetStringAsync("http://catalog/"));
    }

    [Fact]
    public async Task AddServiceDiscoveryOnAClient_IsReplacedByTheMesh()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", "RoundRobin", (a, 1), (b, 3)), services =>
            services.AddHttpClient("test").AddServiceDiscovery());
        var client = host.CreateClient();
        for (var i = 0; i < 40; i++)
        {
            (await client.GetAsync("http://catalog/")).EnsureSuccessStatusCode();
        }

        Assert.Equal(10, a.Count);
        Assert.Equal(30, b.Count);
    }

    private sealed class RecordingHandler(List<Uri> seen) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            lock (seen)
            {
                seen.Add(request.RequestUri!);
            }

            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK));
        }
    }
}
