using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace MeshClient.Tests.Balancing;

/// <summary>Weighted shares, load awareness and concurrency against real Kestrel backends.</summary>
public sealed class WeightedBalancingTests
{
    [Theory]
    [InlineData(LoadBalancerNames.RoundRobin)]
    [InlineData(LoadBalancerNames.Random)]
    [InlineData(LoadBalancerNames.LeastRequest)]
    public async Task Weights_1_2_3_GiveShares_OneSixth_TwoSixths_ThreeSixths(string policy)
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var c = await TestBackend.StartAsync("c");
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", policy, (a, 1), (b, 2), (c, 3)));
        var client = host.CreateClient();
        client.BaseAddress = new Uri("http://catalog");

        const int Total = 6000;
        await Load.RunAsync(Total, concurrency: 1, async _ =>
        {
            using var response = await client.GetAsync("/items/42");
            response.EnsureSuccessStatusCode();
        });

        Assert.Equal(Total, a.Count + b.Count + c.Count);
        Assert.InRange(a.Count / (double)Total, 1 / 6.0 - 0.03, 1 / 6.0 + 0.03);
        Assert.InRange(b.Count / (double)Total, 2 / 6.0 - 0.03, 2 / 6.0 + 0.03);
        Assert.InRange(c.Count / (double)Total, 3 / 6.0 - 0.03, 3 / 6.0 + 0.03);
    }

    [Fact]
    public async Task PeakEwma_SendsAtMostTenPercent_ToABackendTwentyTimesSlower()
    {
        var backends = new List<TestBackend>();
        for (var i = 0; i < 3; i++)
        {
            backends.Add(await TestBackend.StartAsync("fast" + i, async ctx => { await Task.Delay(5); await ctx.Response.WriteAsync("fast"); }));
        }

        var slow = await TestBackend.StartAsync("slow", async ctx => { await Task.Delay(100); await ctx.Response.WriteAsync("slow"); });
        backends.Add(slow);
        try
        {
            await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", null, [.. backends.Select(b => (Backend: b, Weight: 1))]));
            var client = host.CreateClient();
            const int Total = 1200;
            await Load.RunAsync(Total, concurrency: 8, async _ =>
            {
                using var response = await client.GetAsync("http://catalog/");
                response.EnsureSuccessStatusCode();
            });

            Assert.Equal(Total, backends.Sum(b => b.Count));
            Assert.True(slow.Count <= Total * 0.10, $"slow backend got {slow.Count} of {Total}");
        }
        finally
        {
            foreach (var backend in backends)
            {
                await backend.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task LeastRequest_PrefersTheEndpointWithFewerRequestsInFlight()
    {
        await using var busy = await TestBackend.StartAsync("busy", async ctx => { await Task.Delay(300); await ctx.Response.WriteAsync("busy"); });
        await using var idle = await TestBackend.StartAsync("idle");
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", LoadBalancerNames.LeastRequest, (busy, 1), (idle, 1)));
        var client = host.CreateClient();

        await Load.RunAsync(160, concurrency: 8, async _ =>
        {
            using var response = await client.GetAsync("http://catalog/");
            response.EnsureSuccessStatusCode();
        });

        // Least request sends to the busy endpoint only when both P2C candidates are the busy one, or on a tie
        // with a momentarily busy idle one
        // (about 1 in 4: observed 18-33% over runs). Round robin or random would give the busy one 50%.
        Assert.Equal(160, idle.Count + busy.Count);
        Assert.True(busy.Count < 160 * 0.40, $"idle {idle.Count}, busy {busy.Count}");
    }

    [Fact]
    public async Task SixtyFourConcurrentCallers_LoseNothing_AndInFlightReturnsToZero()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var c = await TestBackend.StartAsync("c");
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", null, (a, 1), (b, 2), (c, 3)));
        var client = host.CreateClient();

        const int Callers = 64, PerCaller = 50;
        var failures = 0;
        await Load.RunAsync(Callers * PerCaller, concurrency: Callers, async _ =>
        {
            try
            {
                using var response = await client.GetAsync("http://catalog/x");
                response.EnsureSuccessStatusCode();
            }
            catch (Exception)
            {
                Interlocked.Increment(ref failures);
                throw;
            }
        });

        Assert.Equal(0, failures);
        Assert.Equal(Callers * PerCaller, a.Count + b.Count + c.Count);
        var table = host.Registry.GetTable("catalog");
        Assert.Equal(3, table.States.Count);
        Assert.All(table.States, s => Assert.Equal(0, s.InFlight));
    }
}
