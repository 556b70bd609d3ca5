using System.Net;
using MeshClient.Balancing;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Resilience;

/// <summary>
/// Endpoints that refuse connections are ejected at once and whatever the max-ejection percentage says, stay out
/// even in panic mode, and are probed again after 1 s, 2 s, 3 s… (capped at the base ejection time). Found by the
/// static-configuration chaos soak: with 4 of 5 backends down, 3.3% of GETs failed while only one of the dead ones
/// could be ejected (10%) and panic mode sent traffic to all of them.
/// </summary>
public sealed class UnreachableEjectionTests
{
    private static (MeshHost Host, StubEndpoints Stub, FakeTimeProvider Time) Create(int endpoints, Action<Dictionary<string, string?>>? tune = null)
    {
        var time = FakeTime.Create();
        var (host, stub) = StubEndpoints.CreateHost(time, settings =>
        {
            foreach (var key in settings.Keys.Where(k => k.Contains(":Endpoints:", StringComparison.Ordinal)).ToList())
            {
                settings.Remove(key);
            }

            for (var i = 0; i < endpoints; i++)
            {
                settings[$"Mesh:Services:catalog:Endpoints:{i}:Address"] = $"http://10.0.0.{i + 1}:8080";
            }

            settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
            tune?.Invoke(settings);
        });
        return (host, stub, time);
    }

    private static void Refuse(StubEndpoints stub, string authority) =>
        stub.Behaviors[authority] = (_, _) => throw new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused (" + authority + ")");

    private static EndpointState State(MeshHost host, int i) =>
        host.Registry.GetTable("catalog").States.Single(s => s.Id.Contains($"10.0.0.{i}:", StringComparison.Ordinal));

    /// <summary>Two endpoints, both refusing: the first call fails on both and leaves both unreachable.</summary>
    private static async Task<(MeshHost Host, StubEndpoints Stub, FakeTimeProvider Time, HttpClient Client)> BothRefusingAsync()
    {
        var (host, stub, time) = Create(2);
        Refuse(stub, "10.0.0.1:8080");
        Refuse(stub, "10.0.0.2:8080");
        var client = host.CreateClient();
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("http://catalog/"));
        return (host, stub, time, client);
    }

    private static Task AllProbingAsync(MeshHost host, FakeTimeProvider time) =>
        FakeTime.AdvanceUntilAsync(time, () => host.Registry.GetTable("catalog").States.All(s => s.Status == EndpointStatus.Probing), TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5));

    private static async Task<int> SendAsync(MeshHost host, int count)
    {
        var client = host.CreateClient();
        var ok = 0;
        for (var i = 0; i < count; i++)
        {
            try
            {
                using var response = await client.GetAsync("http://catalog/");
                ok += response.StatusCode == HttpStatusCode.OK ? 1 : 0;
            }
            catch (HttpRequestException)
            {
            }
        }

        return ok;
    }

    [Fact]
    public async Task FourOfFiveRefusing_EveryGetSucceeds_AndEachDeadEndpointIsTriedOncePerEjection()
    {
        var (host, stub, time) = Create(5);
        await using var _ = host;
        for (var i = 2; i <= 5; i++)
        {
            Refuse(stub, $"10.0.0.{i}:8080");
        }

        // All four died at once: the first call may find three of them in a row (2 retries) and fail; no other call.
        Assert.InRange(await SendAsync(host, 200), 199, 200);

        // Each dead endpoint was tried once, then ejected (the max-ejection percentage allows one outlier of 5).
        for (var i = 2; i <= 5; i++)
        {
            Assert.Equal(1, stub.Count($"10.0.0.{i}:8080"));
            Assert.Equal(EndpointStatus.Ejected, State(host, i).Status);
            Assert.True(State(host, i).Unreachable);
        }

        // Panic (1 of 5 healthy) does not bring them back. After 1 s each gets one probe, which fails: out for 2 s.
        await Poll.UntilAsync(() => host.Registry.GetTable("catalog").Snapshot!.Panic); // rebuilt off the request thread
        stub.Reset();
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(200, await SendAsync(host, 200));
        for (var i = 2; i <= 5; i++)
        {
            Assert.Equal(1, stub.Count($"10.0.0.{i}:8080"));
        }

        stub.Reset();
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(200, await SendAsync(host, 200));
        Assert.Equal(200, stub.Count("10.0.0.1:8080"));

        // One comes back: its next probe (at 2 s) readmits it, and it takes traffic again.
        stub.Behaviors.TryRemove("10.0.0.3:8080", out var _);
        time.Advance(TimeSpan.FromSeconds(1));
        stub.Reset();
        Assert.Equal(400, await SendAsync(host, 400));
        Assert.Equal(EndpointStatus.Healthy, State(host, 3).Status);
        Assert.False(State(host, 3).Unreachable);
        Assert.InRange(stub.Count("10.0.0.3:8080"), 100, 300);
    }

    /// <summary>
    /// Regression (chaos soak, seed 733845904): an endpoint ejected for failing answers, then dead, was still sent every
    /// attempt in panic mode (panic admits ejected endpoints): a GET's six requeues all went to it while an endpoint
    /// that had come back waited out its ejection as unreachable. A refusal now marks such an endpoint unreachable, so
    /// the attempts go on to find the first endpoint back.
    /// </summary>
    [Fact]
    public async Task AnOutlierThatThenRefuses_IsUnreachable_AndTheCallFindsTheEndpointThatCameBack()
    {
        var (host, stub, _) = Create(3, s =>
        {
            s["Mesh:Resilience:MaxEjectionPercent"] = "100";
            s["Mesh:Resilience:ConsecutiveFailures"] = "2";
        });
        await using var _ = host;
        var table = host.Registry.GetTable("catalog");
        Refuse(stub, "10.0.0.2:8080");
        Refuse(stub, "10.0.0.3:8080");
        await SendAsync(host, 10);
        Assert.True(State(host, 2).Unreachable && State(host, 3).Unreachable);

        // The last one fails its answers: ejected as an outlier, and panic (0 of 3 healthy) keeps sending to it.
        stub.Behaviors["10.0.0.1:8080"] = (_, _) => Task.FromResult(new HttpResponseMessage(HttpStatusCode.ServiceUnavailable));
        for (var i = 0; i < 10 && State(host, 1).Status == EndpointStatus.Healthy; i++)
        {
            await SendAsync(host, 1);
        }

        Assert.Equal(EndpointStatus.Ejected, State(host, 1).Status);
        Assert.False(State(host, 1).Unreachable);
        await Poll.UntilAsync(() => table.Snapshot!.Panic);

        // It dies; one of the others is back, still ejected (the fake clock does not move). The call finds it.
        Refuse(stub, "10.0.0.1:8080");
        stub.Behaviors.TryRemove("10.0.0.3:8080", out var _);
        stub.Reset();
        using var response = await host.CreateClient().GetAsync("http://catalog/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(State(host, 1).Unreachable);
        Assert.Equal(1, stub.Count("10.0.0.3:8080"));
    }

    [Fact]
    public async Task EveryEndpointRefusing_AttemptsGoOn_SoTheFirstOneBackIsFound()
    {
        var (host, stub, time, client) = await BothRefusingAsync();
        await using var _ = host;

        // Both unreachable: the snapshot keeps them (nothing else to send to) and a call still tries them.
        Assert.All(host.Registry.GetTable("catalog").States, s => Assert.True(s.Unreachable));
        stub.Behaviors.Clear();
        await AllProbingAsync(host, time);
        Assert.Equal(50, await SendAsync(host, 50));
    }

    [Fact]
    public async Task EveryEndpointProbing_WithItsProbeInFlight_AFurtherCallIsStillSent()
    {
        var (host, stub, time, client) = await BothRefusingAsync();
        await using var _ = host;

        // Both come back, slowly: each probe is held until released.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        foreach (var authority in new[] { "10.0.0.1:8080", "10.0.0.2:8080" })
        {
            stub.Behaviors[authority] = async (_, _) =>
            {
                await release.Task;
                return new HttpResponseMessage(HttpStatusCode.OK);
            };
        }

        await AllProbingAsync(host, time);
        var before = stub.Total;
        var probes = new[] { client.GetAsync("http://catalog/"), client.GetAsync("http://catalog/") };
        await Poll.UntilAsync(() => stub.Total == before + 2);

        // Both probes are in flight: a third call has nowhere else to go, so it goes to a probing endpoint.
        var third = client.GetAsync("http://catalog/");
        await Poll.UntilAsync(() => stub.Total == before + 3);
        release.SetResult();
        foreach (var call in probes.Append(third))
        {
            using var response = await call;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.All(host.Registry.GetTable("catalog").States, s => Assert.Equal(EndpointStatus.Healthy, s.Status));
    }

    [Fact]
    public async Task EveryEndpointProbing_ARetryDoesNotTakeAProbe_ItGoesAsAnOrdinaryAttempt()
    {
        var (host, stub, time, client) = await BothRefusingAsync();
        await using var _ = host;

        // Both come back, but the first request after that is still refused (whichever endpoint it reaches).
        var sent = 0;
        stub.Behaviors.Clear();
        foreach (var authority in new[] { "10.0.0.1:8080", "10.0.0.2:8080" })
        {
            stub.Behaviors[authority] = (_, _) => Interlocked.Increment(ref sent) == 1
                ? throw new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused")
                : StubEndpoints.Status(HttpStatusCode.OK);
        }

        await AllProbingAsync(host, time);

        // The first attempt takes one endpoint's probe and is refused; the requeue (a retry) finds the other endpoint
        // probing with its probe free: it goes there as an ordinary attempt, which does not readmit it.
        using (var response = await client.GetAsync("http://catalog/"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var states = host.Registry.GetTable("catalog").States.ToList();
        Assert.Equal(2, sent);
        Assert.Single(states, s => s.Status == EndpointStatus.Ejected);
        var other = Assert.Single(states, s => s.Status == EndpointStatus.Probing);

        // A first attempt takes its probe, and readmits it.
        (await client.GetAsync("http://catalog/")).Dispose();
        Assert.Equal(EndpointStatus.Healthy, other.Status);
    }

    [Fact]
    public async Task MaxEjectionPercentZero_EjectsNothing_NotEvenAnEndpointThatRefusesConnections()
    {
        var (host, stub, _) = Create(4, s => s["Mesh:Resilience:MaxEjectionPercent"] = "0");
        await using var __ = host;
        Refuse(stub, "10.0.0.4:8080");

        Assert.Equal(100, await SendAsync(host, 100)); // every refusal is requeued at once on another endpoint

        var dead = State(host, 4);
        Assert.Equal(EndpointStatus.Healthy, dead.Status);
        Assert.False(dead.Unreachable);
        Assert.InRange(stub.Count("10.0.0.4:8080"), 10, 45); // still its share of first attempts (a quarter)
    }
}
