using System.Globalization;
using MeshClient.Configuration;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// Issue 18's measurement as a test: four real Kestrel backends that answer alike, one of them twice as loaded by
/// other clients — it reports twice the utilization of the others for the same rate in its ORCA
/// <c>endpoint-load-metrics</c> header. Its share under <c>WeightedRoundRobin</c> against <c>RoundRobin</c> and
/// <c>PeakEwma</c>, which see nothing different in its answers. (<c>benchmarks/</c> runs the same scenario for the figures.)
/// </summary>
public sealed class LoadReportShareTests(ITestOutputHelper output)
{
    private const int Calls = 4000;
    private const int Callers = 4;

    /// <summary>Starts the four backends: three report utilization 0.4 at 100 requests/s, the fourth 0.8 (TEXT and JSON forms).</summary>
    internal static async Task<Backends> StartReportingBackendsAsync()
    {
        var backends = await Backends.StartAsync(4);
        for (var i = 0; i < 4; i++)
        {
            var report = i switch
            {
                2 => "JSON {\"application_utilization\": 0.4, \"rps_fractional\": 100, \"eps\": 0}",
                3 => "TEXT application_utilization=0.8, rps_fractional=100, eps=0",
                _ => "TEXT application_utilization=0.4, rps_fractional=100, eps=0",
            };
            var name = backends[i].Name;
            backends[i].Behavior = context =>
            {
                context.Response.Headers["endpoint-load-metrics"] = report;
                return context.Response.WriteAsync(name);
            };
        }

        return backends;
    }

    [Theory]
    [InlineData(LoadBalancerNames.WeightedRoundRobin)]
    [InlineData(LoadBalancerNames.RoundRobin)]
    [InlineData(LoadBalancerNames.PeakEwma)]
    public async Task OneEndpointReportingTwiceTheLoad_GetsHalfTheShareOfEachOther_UnderWeightedRoundRobinOnly(string policy)
    {
        await using var backends = await StartReportingBackendsAsync();
        var time = FakeTime.Create(); // WeightedRoundRobin's blackout and update period, with gRPC's defaults
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", policy, backends.WithWeight(1)), services =>
        {
            if (policy == LoadBalancerNames.WeightedRoundRobin)
            {
                services.AddSingleton<TimeProvider>(time); // PeakEwma measures real latencies: the real clock
            }
        });
        var client = host.CreateClient();

        // Every endpoint reports, then the blackout (10 s) passes and the weights are computed (every second).
        for (var i = 0; i < 40; i++)
        {
            (await client.GetAsync("http://catalog/")).Dispose();
        }

        for (var second = 0; second < 11; second++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
        }

        foreach (var backend in backends)
        {
            backend.ResetCount();
        }

        await Load.RunAsync(Calls, Callers, async _ =>
        {
            using var response = await client.GetAsync("http://catalog/");
            response.EnsureSuccessStatusCode();
        });

        var shares = backends.Select(b => b.Count / (double)Calls).ToArray();
        var others = shares.Take(3).Average();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{policy}: shares {string.Join(" / ", shares.Select(s => (s * 100).ToString("F1", CultureInfo.InvariantCulture) + "%"))}; the loaded one gets {shares[3] / others:F2}× the others' mean"));
        Assert.Equal(Calls, backends.Sum(b => b.Count));
        if (policy == LoadBalancerNames.WeightedRoundRobin)
        {
            // Weights 100 : 100 : 100 : 50 — 2/7 each and 1/7, exactly, as a round robin.
            Assert.True(shares[3] <= 0.7 * others, $"the loaded endpoint got {shares[3]:P1}, the others {others:P1} on average");
            Assert.Equal(Calls / 7.0, backends[3].Count, 2.0);
        }
        else if (policy == LoadBalancerNames.RoundRobin)
        {
            Assert.Equal(Calls / 4, backends[3].Count); // nothing tells round robin apart
        }
    }
}
