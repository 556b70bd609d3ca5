using System.Globalization;
using MeshClient.Tests.Infrastructure;
using Xunit.Abstractions;

namespace MeshClient.Tests.Routing;

/// <summary>
/// A backend with no healthy endpoint takes no share of the split (its weight goes to the others), with one warning;
/// a call never switches backends. So a canary that is down costs only the calls routed to it before outlier detection
/// ejected all its endpoints (every endpoint of the canary fails them, and a retry stays in the canary); after that, 0.
/// The mesh runs on a fake clock: ejections last until the test moves time on.
/// </summary>
public sealed class RouteHealthTests(ITestOutputHelper output)
{
    /// <summary>The 90/10 split; the canary's endpoints may all be ejected (the default keeps one in: 10%).</summary>
    private static Dictionary<string, string?> CanarySettings()
    {
        var settings = RoutedMesh.Split(90, 10);
        settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:00"; // no backoff to wait for on the fake clock
        settings["Mesh:Services:catalog-v2:Resilience:MaxEjectionPercent"] = "100";
        settings["Mesh:Services:catalog-v2:Resilience:BaseEjectionTime"] = "00:01:00";
        return settings;
    }

    [Fact]
    public async Task CanaryAnswering503_IsEjected_ThenTakesNoShare_AndNoCallFails()
    {
        var time = FakeTime.Create();
        await using var mesh = await RoutedMesh.StartAsync(2, 2, CanarySettings(), time);
        foreach (var canary in mesh.V2)
        {
            canary.Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };
        }

        // Detection: the calls routed to the canary before its two endpoints were ejected fail (a retry stays in it).
        var (detectionCalls, detectionFailures) = await UntilCanaryIsOutAsync(mesh);
        Assert.Equal(0.0, mesh.Shares()["catalog-v2"].Share);
        Assert.Equal(100.0, mesh.Shares()["catalog-v1"].Share);
        Assert.Equal("down", mesh.Shares()["catalog-v2"].State);

        // Then a bounded run: not one call fails, and the canary sees none of them.
        var canaryBefore = mesh.Counts.V2;
        var failed = await mesh.RunAsync(2000, callers: 8);
        output.WriteLine($"canary 503: detection {detectionFailures} failed of {detectionCalls} calls; then {failed} failed of 2000, canary requests {mesh.Counts.V2 - canaryBefore}");
        Assert.Equal(0, failed);
        Assert.Equal(canaryBefore, mesh.Counts.V2);
        Assert.InRange(detectionFailures, 1, 16);
        var warning = Assert.Single(mesh.Events(120));
        Assert.Contains("catalog-v2", warning.Message, StringComparison.Ordinal);
        Assert.Contains("every endpoint is ejected", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CanaryRefusingConnections_IsEjected_ThenTakesNoShare_AndNoCallFails()
    {
        var time = FakeTime.Create();
        var settings = CanarySettings();
        settings["Mesh:Services:catalog-v2:Resilience:UnreachableEjectionTime"] = "00:01:00";
        await using var mesh = await RoutedMesh.StartAsync(2, 0, settings, time, v2Closed: 2);

        var (detectionCalls, detectionFailures) = await UntilCanaryIsOutAsync(mesh);
        var failed = await mesh.RunAsync(2000, callers: 8);
        output.WriteLine($"canary refusing: detection {detectionFailures} failed of {detectionCalls} calls; then {failed} failed of 2000");
        Assert.Equal(0, failed);
        Assert.InRange(detectionFailures, 1, 16);
        Assert.Equal(0.0, mesh.Shares()["catalog-v2"].Share);
        Assert.Single(mesh.Events(120));
    }

    [Fact]
    public async Task CanaryBack_IsProbed_ReadmittedAndTakesItsShareAgain_WithOneInformation()
    {
        var time = FakeTime.Create();
        await using var mesh = await RoutedMesh.StartAsync(2, 2, CanarySettings(), time);
        foreach (var canary in mesh.V2)
        {
            canary.Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };
        }

        await UntilCanaryIsOutAsync(mesh);
        foreach (var canary in mesh.V2)
        {
            canary.Behavior = null; // fixed
        }

        // Its ejection (1 min) ends: the canary is probing, and gets one call of its own, whose probe readmits it.
        await FakeTime.AdvanceUntilAsync(time, () => mesh.Shares()["catalog-v2"].State == "probing", TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(2));
        var canaryBefore = mesh.Counts.V2;
        Assert.Equal(0, await mesh.RunAsync(1, callers: 1)); // the next call is the canary's
        Assert.Equal(canaryBefore + 1, mesh.Counts.V2);
        await Poll.UntilAsync(() => mesh.Shares()["catalog-v2"].State == "healthy");

        canaryBefore = mesh.Counts.V2;
        var failed = await mesh.RunAsync(2000, callers: 8);
        var share = 100.0 * (mesh.Counts.V2 - canaryBefore) / 2000;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"canary back: {share:F1}% of 2000 calls, {failed} failed"));
        Assert.Equal(0, failed);
        Assert.InRange(share, 7.0, 13.0);
        Assert.Equal(10.0, mesh.Shares()["catalog-v2"].Share);
        Assert.Single(mesh.Events(120));
        Assert.Single(mesh.Events(121));
    }

    [Fact]
    public async Task EveryBackendDown_CallsFollowTheWeightsAsUsual_AndFailAsWithNoHealthyEndpoint()
    {
        var time = FakeTime.Create();
        var settings = CanarySettings();
        settings["Mesh:Services:catalog-v1:Resilience:MaxEjectionPercent"] = "100";
        settings["Mesh:Services:catalog-v1:Resilience:BaseEjectionTime"] = "00:01:00";
        settings["Mesh:Resilience:MaxRetries"] = "0"; // one request per call: the requests count the calls
        await using var mesh = await RoutedMesh.StartAsync(2, 2, settings, time);
        foreach (var backend in mesh.V1.Concat(mesh.V2))
        {
            backend.Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };
        }

        for (var i = 0; i < 10 && mesh.Shares().Values.Any(b => b.State != "down"); i++)
        {
            await mesh.RunAsync(100, callers: 4);
        }

        Assert.All(mesh.Shares().Values, b => Assert.Equal("down", b.State));
        Assert.Equal(90.0, mesh.Shares()["catalog-v1"].Share);
        Assert.Equal(10.0, mesh.Shares()["catalog-v2"].Share);
        var before = mesh.Counts;
        Assert.Equal(1000, await mesh.RunAsync(1000, callers: 4));
        var (v1, v2) = (mesh.Counts.V1 - before.V1, mesh.Counts.V2 - before.V2);
        output.WriteLine($"every backend down: v1 {v1}, v2 {v2} of 1000 calls (panic sends them to ejected endpoints)");
        Assert.InRange(100.0 * v2 / (v1 + v2), 6.0, 14.0);
    }

    [Fact]
    public async Task ABackendNobodyKnows_NeverTakesACall_FromTheFirstCallOn_WithOneWarning()
    {
        // catalog-v2 has no endpoints anywhere: the first calls wait for discovery's first answer before choosing.
        await using var mesh = await RoutedMesh.StartAsync(1, 0, RoutedMesh.Split(50, 50));

        Assert.Equal(0, await mesh.RunAsync(200, callers: 8));
        Assert.Equal((200, 0), mesh.Counts);
        Assert.Equal("down", mesh.Shares()["catalog-v2"].State);
        var warning = Assert.Single(mesh.Events(120));
        Assert.Contains("no discovery provider knows it", warning.Message, StringComparison.Ordinal);
    }

    /// <summary>Runs calls (8 callers) until the canary takes no share; returns the calls made and those that failed.</summary>
    private static async Task<(int Calls, int Failed)> UntilCanaryIsOutAsync(RoutedMesh mesh)
    {
        var calls = 0;
        var failed = 0;
        while (mesh.Shares()["catalog-v2"].State is "healthy" or "pending")
        {
            Assert.True(calls < 2000, "the canary was never taken out of the split");
            failed += await mesh.RunAsync(50, callers: 8);
            calls += 50;
        }

        return (calls, failed);
    }
}
