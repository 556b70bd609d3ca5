using System.Net;
using MeshClient.Balancing;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Resilience;

/// <summary>Every timing rule of outlier detection on a FakeTimeProvider: no sleeps, no timing luck.</summary>
public sealed class OutlierDetectionTimingTests
{
    private const string Bad = "10.0.0.4:8080";

    private static (MeshHost Host, StubEndpoints Stub, FakeTimeProvider Time) Create(Action<Dictionary<string, string?>>? tune = null)
    {
        var time = FakeTime.Create();
        var (host, stub) = StubEndpoints.CreateHost(time, settings =>
        {
            settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
            settings["Mesh:Resilience:MaxEjectionTime"] = "00:01:40";
            tune?.Invoke(settings);
        });
        return (host, stub, time);
    }

    private static EndpointState BadState(MeshHost host) => host.Registry.GetTable("catalog").States.Single(s => s.Id.Contains("10.0.0.4", StringComparison.Ordinal));

    private static async Task SendAsync(MeshHost host, int count)
    {
        var client = host.CreateClient();
        for (var i = 0; i < count; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    [Fact]
    public async Task EjectionTime_GrowsAsBaseTimesEjections_AndIsCapped_WithASingleProbeEachTime()
    {
        var (host, stub, time) = Create();
        await using var _ = host;
        stub.Behaviors[Bad] = (_, _) => StubEndpoints.Status(HttpStatusCode.ServiceUnavailable);

        await SendAsync(host, 40);
        Assert.Equal(5, stub.Count(Bad));
        Assert.Equal(EndpointStatus.Ejected, BadState(host).Status);

        // Ejections last 30 s, 60 s, 90 s, then 100 s (the cap): each ends with exactly one probe, which fails.
        foreach (var seconds in new[] { 30, 60, 90, 100, 100 })
        {
            stub.Reset();
            time.Advance(TimeSpan.FromSeconds(seconds) - TimeSpan.FromMilliseconds(1));
            await SendAsync(host, 20);
            Assert.Equal(0, stub.Count(Bad));
            Assert.Equal(EndpointStatus.Ejected, BadState(host).Status);

            time.Advance(TimeSpan.FromMilliseconds(1));
            Assert.Equal(EndpointStatus.Probing, BadState(host).Status);
            await SendAsync(host, 20);
            Assert.Equal(1, stub.Count(Bad));
            Assert.Equal(EndpointStatus.Ejected, BadState(host).Status);
        }
    }

    [Fact]
    public async Task HealedEndpoint_IsReadmittedByItsProbe_AndGetsFullTrafficAgain()
    {
        var (host, stub, time) = Create();
        await using var _ = host;
        stub.Behaviors[Bad] = (_, _) => StubEndpoints.Status(HttpStatusCode.ServiceUnavailable);
        await SendAsync(host, 40);
        Assert.Equal(EndpointStatus.Ejected, BadState(host).Status);

        stub.Behaviors.Clear(); // healed
        time.Advance(TimeSpan.FromSeconds(30));
        stub.Reset();
        await SendAsync(host, 40);

        Assert.Equal(EndpointStatus.Healthy, BadState(host).Status);
        Assert.InRange(stub.Count(Bad), 9, 11); // round robin: its quarter, the probe included
    }

    [Fact]
    public async Task ProbingEndpoint_AdmitsOneRequestAtATime()
    {
        var (host, stub, time) = Create();
        await using var _ = host;
        stub.Behaviors[Bad] = (_, _) => StubEndpoints.Status(HttpStatusCode.ServiceUnavailable);
        await SendAsync(host, 40);
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(EndpointStatus.Probing, BadState(host).Status);

        var probe = new TaskCompletionSource<HttpResponseMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        stub.Behaviors[Bad] = (_, _) => probe.Task;
        stub.Reset();
        var client = host.CreateClient();
        var calls = Enumerable.Range(0, 40).Select(_ => client.GetAsync("http://catalog/")).ToList();
        await Poll.UntilAsync(() => stub.Total >= 40);

        Assert.Equal(1, stub.Count(Bad));
        probe.SetResult(new HttpResponseMessage(HttpStatusCode.OK));
        foreach (var response in await Task.WhenAll(calls))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(EndpointStatus.Healthy, BadState(host).Status);
    }

    [Fact]
    public async Task FailurePercentage_OverTheWindow_EjectsAnEndpointThatFailsIntermittently()
    {
        var (host, stub, time) = Create(s =>
        {
            s["Mesh:Resilience:ConsecutiveFailures"] = "0";
            s["Mesh:Resilience:FailurePercentageThreshold"] = "40";
            s["Mesh:Resilience:FailurePercentageMinimumRequests"] = "10";
            s["Mesh:Resilience:MaxRetries"] = "0";
        });
        await using var _ = host;
        var n = 0;
        stub.Behaviors[Bad] = (_, _) => StubEndpoints.Status(Interlocked.Increment(ref n) % 2 == 0 ? HttpStatusCode.InternalServerError : HttpStatusCode.OK);
        var client = host.CreateClient();

        while (stub.Count(Bad) < 9)
        {
            (await client.GetAsync("http://catalog/")).Dispose();
        }

        Assert.Equal(EndpointStatus.Healthy, BadState(host).Status); // 4 of 9 failed, under the minimum volume

        while (stub.Count(Bad) < 10)
        {
            (await client.GetAsync("http://catalog/")).Dispose();
        }

        Assert.Equal(EndpointStatus.Ejected, BadState(host).Status); // 5 of 10: over 40%
    }

    [Fact]
    public async Task FailurePercentage_ForgetsFailuresOlderThanTheWindow()
    {
        var (host, stub, time) = Create(s =>
        {
            s["Mesh:Resilience:ConsecutiveFailures"] = "0";
            s["Mesh:Resilience:FailurePercentageThreshold"] = "40";
            s["Mesh:Resilience:FailurePercentageMinimumRequests"] = "10";
        });
        await using var _ = host;
        var fail = true;
        stub.Behaviors[Bad] = (_, _) => StubEndpoints.Status(fail ? HttpStatusCode.InternalServerError : HttpStatusCode.OK);

        await SendAsync(host, 20); // 5 failures
        time.Advance(TimeSpan.FromSeconds(11)); // the window (10 s) has moved past them
        fail = false;
        await SendAsync(host, 20); // 5 successes
        fail = true;
        await SendAsync(host, 4); // 1 more failure: 1 of 6 in the window

        Assert.Equal(EndpointStatus.Healthy, BadState(host).Status);
    }

    [Fact]
    public async Task MaxEjectionPercent_KeepsASecondOutlierIn_ButOneMayAlwaysBeEjected()
    {
        var (host, stub, _) = Create();
        await using var __ = host;
        stub.Behaviors[Bad] = (_, _) => StubEndpoints.Status(HttpStatusCode.ServiceUnavailable);
        stub.Behaviors["10.0.0.3:8080"] = (_, _) => StubEndpoints.Status(HttpStatusCode.ServiceUnavailable);

        await SendAsync(host, 80);

        var states = host.Registry.GetTable("catalog").States.ToList();
        Assert.Equal(1, states.Count(s => s.Status == EndpointStatus.Ejected)); // 10% of 4, rounded up to one
    }

    [Fact]
    public async Task PanicThreshold_BelowIt_TrafficGoesToEveryEndpoint()
    {
        var (host, stub, time) = Create(s => s["Mesh:Resilience:MaxEjectionPercent"] = "100");
        await using var _ = host;
        foreach (var i in new[] { 2, 3, 4 })
        {
            stub.Behaviors[$"10.0.0.{i}:8080"] = (_, _) => StubEndpoints.Status(HttpStatusCode.ServiceUnavailable);
        }

        var client = host.CreateClient();
        for (var i = 0; i < 30; i++)
        {
            (await client.GetAsync("http://catalog/")).Dispose();
        }

        var table = host.Registry.GetTable("catalog");
        await Poll.UntilAsync(() => table.Snapshot!.Panic); // ejections rebuild the snapshot off the request thread
        Assert.Equal(4, table.Snapshot!.Active.Length);
    }

    [Fact]
    public async Task EveryEndpointFailing_ConcurrentCallers_NoFallbackPushesMoreThanTheLimitIntoAnEndpoint()
    {
        var (host, stub, _) = Create(s =>
        {
            s["Mesh:Resilience:MaxRetries"] = "0";
            s["Mesh:Resilience:MaxEjectionPercent"] = "100";
            s["Mesh:Resilience:PanicThresholdPercent"] = "0";
        });
        await using var __ = host;
        var client = host.CreateClient();
        var authorities = Enumerable.Range(1, 4).Select(i => $"10.0.0.{i}:8080").ToArray();
        foreach (var authority in authorities)
        {
            stub.Behaviors[authority] = (_, _) => StubEndpoints.Status(HttpStatusCode.ServiceUnavailable);
        }

        // One failure each (round robin), then every endpoint holds its answers: 40 callers arrive at once.
        for (var i = 0; i < 4; i++)
        {
            (await client.GetAsync("http://catalog/")).Dispose();
        }

        Assert.All(authorities, a => Assert.Equal(1, stub.Count(a)));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        foreach (var authority in authorities)
        {
            stub.Behaviors[authority] = async (_, _) =>
            {
                await release.Task;
                return new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
            };
        }

        var refused = 0;
        var calls = Enumerable.Range(0, 40).Select(async _ =>
        {
            try
            {
                (await client.GetAsync("http://catalog/")).Dispose();
            }
            catch (NoHealthyEndpointException)
            {
                Interlocked.Increment(ref refused);
            }
        }).ToList();
        await Poll.UntilAsync(() => stub.Total - 4 + Volatile.Read(ref refused) == 40);

        // 1 failure + 4 in flight = the ejection limit of 5: the other 24 callers fail fast, before a byte is sent.
        Assert.All(authorities, a => Assert.Equal(5, stub.Count(a)));
        Assert.Equal(24, refused);
        release.SetResult();
        await Task.WhenAll(calls);
    }
}
