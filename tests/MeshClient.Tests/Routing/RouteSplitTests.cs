using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using MeshClient.Tests.Infrastructure;
using Xunit.Abstractions;

namespace MeshClient.Tests.Routing;

/// <summary>
/// Weighted splits and header routes between backend services, on real Kestrel backends through a real
/// IHttpClientFactory: the split's accuracy, a header route taking all its calls, retries that stay in the backend the
/// call was routed to, and a reload that changes the split on the next calls with none failing.
/// </summary>
public sealed class RouteSplitTests(ITestOutputHelper output)
{
    [Fact]
    public async Task NinetyTenSplit_Over4000Calls_LandsWithinTwoPoints()
    {
        await using var mesh = await RoutedMesh.StartAsync(2, 2, RoutedMesh.Split(90, 10));

        const int Total = 4000;
        var failed = await mesh.RunAsync(Total, callers: 8);

        var (v1, v2) = mesh.Counts;
        var share = 100.0 * v2 / Total;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"90/10 over {Total} calls, 8 callers: v1 {v1} ({100.0 * v1 / Total:F2}%), v2 {v2} ({share:F2}%), failed {failed}"));
        Assert.Equal(0, failed);
        Assert.Equal(Total, v1 + v2);

        // Binomial: the standard deviation of the canary's share over 4,000 calls is 0.47 points; ±2 is 4.2 of them.
        Assert.InRange(share, 8.0, 12.0);
    }

    [Fact]
    public async Task HeaderRoute_SendsEveryMatchingCallToItsBackend_AndTheRestFollowTheSplit()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Routes:0:Name"] = "testers",
            ["Mesh:Services:catalog:Routes:0:Match:Headers:x-canary"] = "always",
            ["Mesh:Services:catalog:Routes:0:Backends:0:Service"] = "catalog-v2",
            ["Mesh:Services:catalog:Routes:1:Name"] = "split",
            ["Mesh:Services:catalog:Routes:1:Backends:0:Service"] = "catalog-v1",
            ["Mesh:Services:catalog:Routes:1:Backends:0:Weight"] = "90",
            ["Mesh:Services:catalog:Routes:1:Backends:1:Service"] = "catalog-v2",
            ["Mesh:Services:catalog:Routes:1:Backends:1:Weight"] = "10",
        };
        await using var mesh = await RoutedMesh.StartAsync(2, 2, settings);

        Assert.Equal(0, await mesh.RunAsync(500, callers: 8, (request, _) => request.Headers.Add("x-canary", "always")));
        Assert.Equal((0, 500), mesh.Counts);

        // Another value, or none, is not the testers' route: the split takes it.
        Assert.Equal(0, await mesh.RunAsync(1000, callers: 8, (request, i) =>
        {
            if (i % 2 == 0)
            {
                request.Headers.Add("x-canary", "Always");
            }
        }));
        var (v1, v2) = mesh.Counts;
        output.WriteLine($"header route: 500 of 500 to v2; then the split: v1 {v1}, v2 {v2 - 500} of 1000");
        Assert.Equal(1500, v1 + v2);
        Assert.InRange(v2 - 500, 50, 160); // 10% of 1,000 (sd 9.5 calls)
    }

    [Fact]
    public async Task ARetry_GoesToAnotherEndpointOfTheSameBackend_NeverToTheOtherBackend()
    {
        var settings = RoutedMesh.Split(50, 50);
        settings["Mesh:Resilience:ConsecutiveFailures"] = "0"; // v1's failing endpoint stays in: every call that meets it retries
        settings["Mesh:Resilience:FailurePercentageThreshold"] = "0";
        settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
        settings["Mesh:Resilience:RetryBudgetPercent"] = "1000";
        settings["Mesh:Services:catalog-v1:LoadBalancer"] = "RoundRobin"; // PeakEwma would learn to avoid the failing one
        await using var mesh = await RoutedMesh.StartAsync(2, 2, settings);
        mesh.V1[0].Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };

        // Each backend notes the calls it saw (by path): a call retried must have stayed in one service.
        var seenBy = new ConcurrentDictionary<string, ConcurrentBag<string>>();
        Assert.Equal(0, await mesh.RunAsync(400, callers: 4));
        foreach (var (backend, service) in mesh.V1.Select(b => (b, "v1")).Concat(mesh.V2.Select(b => (b, "v2"))))
        {
            foreach (var (_, path, _) in backend.Requests)
            {
                seenBy.GetOrAdd(path, _ => []).Add(service);
            }
        }

        var retried = seenBy.Count(c => c.Value.Count > 1);
        output.WriteLine($"400 calls: {retried} retried; v1 {mesh.Counts.V1} requests (its first endpoint {mesh.V1[0].Count}, all 503), v2 {mesh.Counts.V2}");
        Assert.Equal(400, seenBy.Count);
        Assert.True(retried > 20, $"only {retried} calls met v1's failing endpoint");
        Assert.All(seenBy, call => Assert.Single(call.Value.Distinct()));

        // Every call that met v1's failing endpoint was retried on v1's other one.
        var healthyV1 = mesh.V1[1].Requests.Select(r => r.PathAndQuery).ToHashSet();
        Assert.All(mesh.V1[0].Requests, r => Assert.Contains(r.PathAndQuery, healthyV1));
    }

    [Fact]
    public async Task Reload_From90To50_TakesEffectOnTheNextCalls_WithNoneFailingWhileCallsRun()
    {
        await using var mesh = await RoutedMesh.StartAsync(2, 2, RoutedMesh.Split(90, 10));
        var configuration = mesh.Host.Configuration;

        // Calls run throughout: the reload happens in the middle of them.
        using var stop = new CancellationTokenSource();
        var background = Task.Run(async () =>
        {
            var failed = 0;
            var calls = 0;
            while (!stop.IsCancellationRequested)
            {
                failed += await mesh.RunAsync(50, callers: 4);
                calls += 50;
            }

            return (calls, failed);
        });

        await Poll.UntilAsync(() => mesh.Counts.V1 + mesh.Counts.V2 >= 400);
        var after = new Dictionary<string, string?>(mesh.Settings, StringComparer.OrdinalIgnoreCase)
        {
            ["Mesh:Services:catalog:Routes:0:Backends:0:Weight"] = "50",
            ["Mesh:Services:catalog:Routes:0:Backends:1:Weight"] = "50",
        };
        configuration.Replace(after);

        // The reload is in force when Replace returns: the next call already follows 50/50.
        Assert.Equal(50.0, mesh.Shares()["catalog-v2"].Share);
        var (v1, v2) = mesh.Counts;
        await Poll.UntilAsync(() => mesh.Counts.V1 + mesh.Counts.V2 - v1 - v2 >= 2000, TimeSpan.FromSeconds(60));
        stop.Cancel();
        var (calls, failed) = await background;
        var (v1After, v2After) = mesh.Counts;
        var share = 100.0 * (v2After - v2) / (v1After - v1 + v2After - v2);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"after the reload: v2 {share:F1}% of {v1After - v1 + v2After - v2} calls; {calls} calls in all, {failed} failed"));
        Assert.Equal(0, failed);
        Assert.InRange(share, 45.0, 55.0); // sd 1.1 points over 2,000 calls
    }
}
