using System.Net;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;

namespace MeshClient.Tests.Resilience;

/// <summary>
/// In panic mode an endpoint whose ejection ended still takes its probe, so that it can be readmitted. Found by the
/// route split (issue 16): a canary whose endpoints were all ejected (MaxEjectionPercent 100) is in panic, and before
/// the fix its returning endpoints took only ordinary attempts in panic, whose successes never readmit — they stayed
/// probing, and the canary out of the split, for good.
/// </summary>
public sealed class PanicProbeTests
{
    [Fact]
    public async Task PanicMode_EndpointsBackAfterTheirEjection_AreProbedAndReadmitted()
    {
        var time = FakeTime.Create();
        var (host, stub) = StubEndpoints.CreateHost(time, s =>
        {
            s["Mesh:Resilience:MaxEjectionPercent"] = "100";
            s["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
        });
        await using var _ = host;
        var failing = new[] { 2, 3, 4 }.Select(i => $"10.0.0.{i}:8080").ToArray();
        foreach (var authority in failing)
        {
            stub.Behaviors[authority] = (_, _) => StubEndpoints.Status(HttpStatusCode.ServiceUnavailable);
        }

        var client = host.CreateClient();
        var table = host.Registry.GetTable("catalog");
        for (var i = 0; i < 60 && table.States.Count(s => s.Status == EndpointStatus.Ejected) < 3; i++)
        {
            (await client.GetAsync("http://catalog/")).Dispose();
        }

        await Poll.UntilAsync(() => table.Snapshot!.Panic); // 1 of 4 healthy, below the 50% panic threshold
        foreach (var authority in failing)
        {
            stub.Behaviors.TryRemove(authority, out var _);
        }

        // Their ejection (30 s) ends: each is probing, and the service still in panic.
        await FakeTime.AdvanceUntilAsync(time, () => table.States.Count(s => s.Status == EndpointStatus.Probing) == 3, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(40));
        Assert.True(table.Snapshot!.Panic);

        for (var i = 0; i < 40; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await Poll.UntilAsync(() => !table.Snapshot!.Panic);
        Assert.All(table.States, s => Assert.Equal(EndpointStatus.Healthy, s.Status));
    }
}
