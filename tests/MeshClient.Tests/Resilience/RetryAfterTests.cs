using System.Globalization;
using System.Net;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Resilience;

/// <summary>
/// Issue 18, load signals: an endpoint that answers 503 or 429 with <c>Retry-After</c> is avoided for that long and
/// the call goes on elsewhere at once; the delay is waited only when no other endpoint can take the retry. Real
/// Kestrel backends; the mesh runs on a fake clock that these tests never advance unless they say so, so a retry that
/// waited for any delay would never be sent.
/// </summary>
public sealed class RetryAfterTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10); // real time, only against a hang

    private static MeshHost CreateHost(FakeTimeProvider time, string policy, Backends backends, Action<Dictionary<string, string?>>? tune = null)
    {
        var settings = MeshHost.ServiceSettings("catalog", policy, backends.WithWeight(1));
        settings["Mesh:Resilience:ConsecutiveFailures"] = "0";
        settings["Mesh:Resilience:FailurePercentageThreshold"] = "0";
        tune?.Invoke(settings);
        return MeshHost.Create(settings, services => services.AddSingleton<TimeProvider>(time));
    }

    private static Func<HttpContext, Task> Answer(int status, string retryAfter) => context =>
    {
        context.Response.StatusCode = status;
        context.Response.Headers.RetryAfter = retryAfter;
        return Task.CompletedTask;
    };

    [Theory]
    [InlineData(503, "5")]
    [InlineData(429, "5")]
    [InlineData(503, "120")] // above RetryMaxDelay: used to wait the cap (250 ms) before going elsewhere
    public async Task RetryAfter_WithAnotherHealthyEndpoint_TheCallContinuesElsewhereAtOnce(int status, string retryAfter)
    {
        var time = FakeTime.Create();
        await using var backends = await Backends.StartAsync(4);
        var asking = backends[0];
        asking.Behavior = Answer(status, retryAfter);
        await using var host = CreateHost(time, LoadBalancerNames.RoundRobin, backends);
        var client = host.CreateClient();

        // Round robin over four: one of the first four calls meets the endpoint that asks to wait.
        for (var i = 0; i < 8; i++)
        {
            var call = client.GetAsync("http://catalog/items");
            var finished = await Task.WhenAny(call, Task.Delay(Bound));
            Assert.True(finished == call, $"call {i} waited on the fake clock: its retry was held back by the Retry-After delay");
            using var response = await call;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(1, asking.Count); // and it stays out of the picks
    }

    [Fact]
    public async Task RetryAfter_WhenOnlyTheSameEndpointCanTakeTheRetry_TheDelayIsWaited_CappedAtRetryMaxDelay()
    {
        var time = FakeTime.Create();
        await using var backends = await Backends.StartAsync(1);
        backends[0].Behavior = Answer(503, "5");
        await using var host = CreateHost(time, LoadBalancerNames.RoundRobin, backends, s => s["Mesh:Resilience:MaxRetries"] = "1");

        var call = host.CreateClient().GetAsync("http://catalog/items");
        await Poll.UntilAsync(() => backends[0].Count == 1);
        var waited = await FakeTime.AdvanceUntilAsync(time, () => backends[0].Count == 2, TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(10));
        Assert.InRange(waited, TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(260)); // 5 s asked, RetryMaxDelay 250 ms
        using var response = await call;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
    }

    [Fact]
    public async Task RetryAfter_WhenEveryOtherEndpointWasTried_TheDelayIsWaited()
    {
        // Both endpoints ask to wait: the first retry goes to the other one at once, the second has nowhere new to go.
        var time = FakeTime.Create();
        await using var backends = await Backends.StartAsync(2);
        backends[0].Behavior = Answer(503, "1");
        backends[1].Behavior = Answer(503, "1");
        await using var host = CreateHost(time, LoadBalancerNames.RoundRobin, backends);

        var call = host.CreateClient().GetAsync("http://catalog/items");
        await Poll.UntilAsync(() => backends[0].Count == 1 && backends[1].Count == 1); // no fake time has passed
        var waited = await FakeTime.AdvanceUntilAsync(time, () => backends.Sum(b => b.Count) == 3, TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(10));
        Assert.InRange(waited, TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(260)); // 1 s asked, capped at RetryMaxDelay
        using var response = await call;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
    }

    [Fact]
    public async Task RetryAfter_IsRecordedAsTheEndpointsLatency_AsLinkerdsLoadBiaserDoes()
    {
        // Ejection off: the endpoint stays in the picks, and its latency estimate is what keeps peak-EWMA away from it.
        var time = FakeTime.Create();
        await using var backends = await Backends.StartAsync(2);
        backends[0].Behavior = Answer(429, "20");
        await using var host = CreateHost(time, LoadBalancerNames.PeakEwma, backends, s => s["Mesh:Resilience:MaxEjectionPercent"] = "0");
        var client = host.CreateClient();
        for (var i = 0; i < 40 && backends[0].Count == 0; i++)
        {
            (await client.GetAsync("http://catalog/items")).Dispose();
        }

        Assert.Equal(1, backends[0].Count);
        var state = host.Registry.GetTable("catalog").States.Single(s => s.Id.Contains(":" + backends[0].Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
        var seconds = state.LatencyEstimate / time.TimestampFrequency;
        Assert.InRange(seconds, 20, 20.5); // the 20 s asked, not the 1 s failure penalty

        // 10 s later (one decay time), still far above its peer: 200 calls, at most a couple of probes its way.
        time.Advance(TimeSpan.FromSeconds(10));
        for (var i = 0; i < 200; i++)
        {
            (await client.GetAsync("http://catalog/items")).Dispose();
        }

        Assert.InRange(backends[0].Count, 1, 3);
    }
}
