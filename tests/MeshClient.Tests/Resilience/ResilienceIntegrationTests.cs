using System.Net;
using System.Net.Sockets;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Xunit.Abstractions;

namespace MeshClient.Tests.Resilience;

/// <summary>Bad instances against real Kestrel backends: callers should not notice.</summary>
public sealed class ResilienceIntegrationTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(LoadBalancerNames.PeakEwma)]
    [InlineData(LoadBalancerNames.RoundRobin)]
    public async Task OneOfFourAnswers503_EveryGetSucceeds_AndTheBadOneGetsAtMostFivePerEjection(string policy)
    {
        await using var backends = await Backends.StartAsync(4);
        var bad = backends[3];
        bad.Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", policy, backends.WithWeight(1)));
        var client = host.CreateClient();

        const int Total = 1000;
        await Load.RunAsync(Total, concurrency: 8, async _ =>
        {
            using var response = await client.GetAsync("http://catalog/items");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        });

        output.WriteLine($"bad backend received {bad.Count} of {backends.Sum(b => b.Count)} attempts");
        Assert.InRange(bad.Count, 1, 5);
        if (policy == LoadBalancerNames.RoundRobin)
        {
            // Round robin keeps sending its share until outlier detection ejects it (5 in a row, for 30 s).
            // Peak-EWMA usually stops sooner: each failure costs a 1 s latency penalty, so it stops being picked.
            Assert.Equal(EndpointStatus.Ejected, host.Registry.GetTable("catalog").States.Single(s => s.Id.Contains($":{bad.Port}", StringComparison.Ordinal)).Status);
        }
    }

    [Fact]
    public async Task OneOfFourRefusesConnections_EveryGetAndPostSucceeds_AndNoPostIsProcessedTwice()
    {
        await using var backends = await Backends.StartAsync(3);
        var refusedPort = ClosedPort();
        var settings = MeshHost.ServiceSettings("catalog", LoadBalancerNames.RoundRobin, backends.WithWeight(1));
        settings["Mesh:Services:catalog:Endpoints:3:Address"] = $"http://127.0.0.1:{refusedPort}";
        await using var host = MeshHost.Create(settings);
        var client = host.CreateClient();

        const int Total = 400;
        await Load.RunAsync(Total, concurrency: 4, async i =>
        {
            using var response = i % 2 == 0
                ? await client.GetAsync("http://catalog/items")
                : await client.PostAsync("http://catalog/orders", new StringContent($"order {i}"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        });

        Assert.Equal(Total, backends.Sum(b => b.Count));
        Assert.Equal(Total / 2, backends.Sum(b => b.Requests.Count(r => r.Method == "POST")));
    }

    [Fact]
    public async Task PostProcessedThen503_IsNotRetried_TheCallerGetsThe503_TheServerCountsOne()
    {
        await using var backends = await Backends.StartAsync(3);
        foreach (var backend in backends)
        {
            backend.Behavior = async ctx =>
            {
                using var reader = new StreamReader(ctx.Request.Body);
                await reader.ReadToEndAsync();
                ctx.Response.StatusCode = 503;
            };
        }

        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", null, backends.WithWeight(1)));

        using var response = await host.CreateClient().PostAsync("http://catalog/orders", new StringContent("{}"));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(1, backends.Sum(b => b.Count));
    }

    [Fact]
    public async Task GetAnswered503_IsRetriedOnADifferentEndpoint()
    {
        await using var backends = await Backends.StartAsync(3);
        backends[0].Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };
        backends[1].Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };
        var settings = MeshHost.ServiceSettings("catalog", LoadBalancerNames.RoundRobin, backends.WithWeight(1));
        settings["Mesh:Resilience:ConsecutiveFailures"] = "0";
        settings["Mesh:Resilience:FailurePercentageThreshold"] = "0";
        await using var host = MeshHost.Create(settings);
        var client = host.CreateClient();

        for (var i = 0; i < 30; i++)
        {
            using var response = await client.GetAsync("http://catalog/items");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // Never the same endpoint twice in one call: at most 3 attempts (2 retries) and the good one always reached.
        Assert.Equal(30, backends[2].Count);
        Assert.True(backends[0].Count + backends[1].Count <= 60);
    }

    [Fact]
    public async Task AllBackendsFailing_PanicModeKeepsTrafficFlowing_AndTheCallerGetsAClearAnswerFast()
    {
        await using var backends = await Backends.StartAsync(4);
        foreach (var backend in backends)
        {
            backend.Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };
        }

        var settings = MeshHost.ServiceSettings("catalog", null, backends.WithWeight(1));
        settings["Mesh:Resilience:MaxEjectionPercent"] = "100";
        settings["Mesh:Resilience:TotalTimeout"] = "00:00:05";
        await using var host = MeshHost.Create(settings);
        var client = host.CreateClient();

        var started = TimeProvider.System.GetTimestamp();
        for (var i = 0; i < 60; i++)
        {
            using var response = await client.GetAsync("http://catalog/items");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        }

        var elapsed = TimeProvider.System.GetElapsedTime(started);
        await Poll.UntilAsync(() => !host.Registry.GetTable("catalog").RebuildQueued); // ejections rebuild off the request
        var snapshot = host.Registry.GetTable("catalog").Snapshot!;
        Assert.True(snapshot.Panic);
        Assert.Equal(4, snapshot.Active.Length);
        Assert.True(elapsed < TimeSpan.FromSeconds(30), $"60 calls took {elapsed}");

        // In panic, ejected endpoints still receive traffic: nothing is refused by the mesh itself.
        var before = backends.Sum(b => b.Count);
        using (var response = await client.GetAsync("http://catalog/items"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        }

        Assert.True(backends.Sum(b => b.Count) > before);
    }

    [Fact]
    public async Task AllBackendsRefusing_FailsWithAClearErrorWithinTheTotalTimeout()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Endpoints:0:Address"] = $"http://127.0.0.1:{ClosedPort()}",
            ["Mesh:Services:catalog:Endpoints:1:Address"] = $"http://127.0.0.1:{ClosedPort()}",
            ["Mesh:Resilience:TotalTimeout"] = "00:00:03",
        };
        await using var host = MeshHost.Create(settings);

        var started = TimeProvider.System.GetTimestamp();
        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => host.CreateClient().GetAsync("http://catalog/items"));

        Assert.Equal(HttpRequestError.ConnectionError, ex.HttpRequestError);
        Assert.True(TimeProvider.System.GetElapsedTime(started) < TimeSpan.FromSeconds(3));
    }

    [Fact]
    public async Task FullOutage_RetriesStayWithinTheBudget()
    {
        await using var backends = await Backends.StartAsync(4);
        foreach (var backend in backends)
        {
            backend.Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };
        }

        var settings = MeshHost.ServiceSettings("catalog", null, backends.WithWeight(1));
        settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
        await using var host = MeshHost.Create(settings);
        var client = host.CreateClient();

        const int Requests = 2000;
        var started = TimeProvider.System.GetTimestamp();
        var refused = 0;
        await Load.RunAsync(Requests, concurrency: 8, async _ =>
        {
            try
            {
                using var response = await client.GetAsync("http://catalog/items");
                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            }
            catch (NoHealthyEndpointException)
            {
                // Every endpoint failing and at its admission limit (failures + in flight = 5): the call fails fast,
                // before a byte is sent, as Envoy's overflow does.
                Interlocked.Increment(ref refused);
            }
        });
        var seconds = TimeProvider.System.GetElapsedTime(started).TotalSeconds;

        var attempts = backends.Sum(b => b.Count);

        // Budget: 20% of requests plus 10 per second over 10 s. Without it, 2 retries each would make 6000 attempts.
        // Calls refused by the admission limit send nothing (with no backoff here, most calls are: 8 callers, 3
        // endpoints not ejected, each holding at most 5 failures plus attempts in flight).
        var allowed = (Requests * 0.2) + (10 * Math.Max(10, seconds));
        output.WriteLine($"full outage: {Requests} requests, {attempts} attempts, {refused} refused by the admission limit, in {seconds:F1} s (budget allows {allowed:F0} retries)");
        Assert.InRange(attempts, 1, Requests - refused + allowed + 8);
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
