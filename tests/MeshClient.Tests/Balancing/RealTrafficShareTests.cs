using System.Globalization;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Tests.Infrastructure;
using Xunit.Abstractions;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// Every policy's shares follow the weights in real traffic (Kestrel backends on 127.0.0.1 that answer alike),
/// one call at a time and with 8 concurrent callers, from the first call on: no endpoint is starved because it
/// was not measured yet, or measured first.
/// </summary>
public sealed class RealTrafficShareTests(ITestOutputHelper output)
{
    public static TheoryData<string, int> PoliciesAndCallers()
    {
        var data = new TheoryData<string, int>();
        foreach (var policy in new[] { LoadBalancerNames.PeakEwma, LoadBalancerNames.LeastRequest, LoadBalancerNames.RoundRobin, LoadBalancerNames.Random })
        {
            data.Add(policy, 1);
            data.Add(policy, 8);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(PoliciesAndCallers))]
    public async Task Weights_1_2_3_UnderEqualLatency_GiveSharesWithinFivePoints_EightForPeakEwma(string policy, int callers)
    {
        await using var backends = await Backends.StartAsync(3);
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", policy, (backends[0], 1), (backends[1], 2), (backends[2], 3)));
        var client = host.CreateClient();

        const int Total = 6000;
        await Load.RunAsync(Total, callers, async _ =>
        {
            using var response = await client.GetAsync("http://catalog/items/42");
            response.EnsureSuccessStatusCode();
        });

        var shares = backends.Select(b => b.Count / (double)Total).ToArray();
        var text = string.Join(" / ", shares.Select(s => (s * 100).ToString("F1", CultureInfo.InvariantCulture) + "%"));
        output.WriteLine($"{policy}, {callers} caller(s): {text}");
        Assert.Equal(Total, backends.Sum(b => b.Count));

        // Peak-EWMA follows latency, and on a loaded machine "equal latency" is noisy: the endpoint that takes the most
        // calls catches the most peaks (a peak is taken at once, and decays), so the heavy weights lose a few points to
        // the light ones (seen at 38.5% / 45.1% for weights 2 / 3 with the suite running in parallel). Eight points
        // still fails a policy that ignored the weights (equal shares are 16.7 points off the weight 3's 50%).
        var tolerance = policy == LoadBalancerNames.PeakEwma ? 0.08 : 0.05;
        for (var i = 0; i < 3; i++)
        {
            Assert.True(Math.Abs(shares[i] - ((i + 1) / 6.0)) <= tolerance, $"{policy}, {callers} caller(s): shares {text}, expected 16.7% / 33.3% / 50.0%");
        }
    }

    [Theory]
    [InlineData(LoadBalancerNames.PeakEwma)]
    [InlineData(LoadBalancerNames.LeastRequest)]
    [InlineData(LoadBalancerNames.RoundRobin)]
    [InlineData(LoadBalancerNames.Random)]
    public async Task StandardServiceDiscoverySection_TwoInstances_SixteenSequentialCallsReachBoth(string policy)
    {
        await using var backends = await Backends.StartAsync(2);
        await using var host = MeshHost.Create(new Dictionary<string, string?>
        {
            ["Mesh:LoadBalancer"] = policy,
            ["Services:catalog:http:0"] = backends[0].Address.ToString(),
            ["Services:catalog:http:1"] = backends[1].Address.ToString(),
        });
        var client = host.CreateClient();

        for (var i = 0; i < 16; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
            response.EnsureSuccessStatusCode();
        }

        output.WriteLine($"{policy}: {backends[0].Count} / {backends[1].Count}");

        // Equal weights: the stock resolver alternates (8 / 8); a fair draw of 16 is within 2 to 14 with p > 0.999.
        // Before issue 12, PeakEwma sent all 16 to one instance.
        Assert.Equal(16, backends[0].Count + backends[1].Count);
        Assert.InRange(backends[0].Count, 2, 14);
    }
}
