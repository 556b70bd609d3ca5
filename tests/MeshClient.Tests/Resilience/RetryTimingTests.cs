using System.Net;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Resilience;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Resilience;

/// <summary>Backoff, Retry-After, timeouts and the retry budget on a FakeTimeProvider.</summary>
public sealed class RetryTimingTests
{
    private static (MeshHost Host, StubEndpoints Stub, FakeTimeProvider Time) Create(Action<Dictionary<string, string?>> tune)
    {
        var time = new FakeTimeProvider();
        var (host, stub) = StubEndpoints.CreateHost(time, settings =>
        {
            settings["Mesh:Resilience:ConsecutiveFailures"] = "0";
            settings["Mesh:Resilience:FailurePercentageThreshold"] = "0";
            tune(settings);
        });
        return (host, stub, time);
    }

    [Fact]
    public async Task Backoff_WaitsBetweenAttempts_AndNeverLongerThanTheCap()
    {
        var (host, stub, time) = Create(s =>
        {
            s["Mesh:Resilience:RetryBaseDelay"] = "00:00:01";
            s["Mesh:Resilience:RetryMaxDelay"] = "00:00:02";
            s["Mesh:Resilience:MaxRetries"] = "3";
        });
        await using var _ = host;
        for (var i = 1; i <= 4; i++)
        {
            stub.Behaviors[$"10.0.0.{i}:8080"] = (_, _) => StubEndpoints.Status(HttpStatusCode.ServiceUnavailable);
        }

        var call = host.CreateClient().GetAsync("http://catalog/");
        await Poll.UntilAsync(() => stub.Total == 1);
        for (var attempt = 2; attempt <= 4; attempt++)
        {
            var waited = await FakeTime.AdvanceUntilAsync(time, () => stub.Total == attempt, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(10));
            Assert.InRange(waited, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(2)); // a wait, never above the cap
        }

        using var response = await call;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(4, stub.Total);
    }

    [Theory]
    [InlineData(0.1, 0.1)] // honoured when it is under the cap
    [InlineData(5, 0.25)] // capped at RetryMaxDelay (250 ms)
    [InlineData(120, 0.25)]
    public async Task RetryAfter_IsHonoured_UpToRetryMaxDelay_WhenTheSameEndpointIsTriedAgain(double retryAfterSeconds, double expectedSeconds)
    {
        // One endpoint: the retry can only go back to it, so it waits what it asked (with another endpoint to take it,
        // the retry goes there at once: RetryAfterTests).
        var time = new FakeTimeProvider();
        var stub = new StubEndpoints();
        var settings = StubEndpoints.Settings("catalog", LoadBalancerNames.RoundRobin, 1);
        settings["Mesh:Resilience:ConsecutiveFailures"] = "0";
        settings["Mesh:Resilience:FailurePercentageThreshold"] = "0";
        settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
        await using var host = MeshHost.Create(settings, services =>
        {
            services.AddSingleton<TimeProvider>(time);
            services.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => stub);
        });
        stub.Behaviors["10.0.0.1:8080"] = (_, _) => Task.FromResult(ServiceUnavailable(TimeSpan.FromSeconds(retryAfterSeconds)));

        var call = host.CreateClient().GetAsync("http://catalog/");
        await Poll.UntilAsync(() => stub.Total == 1);
        var waited = await FakeTime.AdvanceUntilAsync(time, () => stub.Total == 2, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(20));
        Assert.InRange(waited, TimeSpan.FromSeconds(expectedSeconds), TimeSpan.FromSeconds(expectedSeconds + 0.05));
        await FakeTime.AdvanceUntilAsync(time, () => stub.Total == 3, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(20));
        using var response = await call;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(3, stub.Total);
    }

    [Fact]
    public async Task ALongRetryAfter_OnEveryEndpoint_ReturnsTheServersAnswer_NotATimeout()
    {
        // Two endpoints answer 503 with Retry-After: 120, the defaults otherwise (TotalTimeout 30 s). The call must
        // end with the server's 503 after at most 2 × RetryMaxDelay (now one: the first retry goes to the other
        // endpoint at once), not sleep into its total timeout.
        var time = FakeTime.Create();
        var stub = new StubEndpoints();
        await using var host = MeshHost.Create(StubEndpoints.Settings("catalog", LoadBalancerNames.RoundRobin, 2), services =>
        {
            services.AddSingleton<TimeProvider>(time);
            services.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => stub);
        });
        for (var i = 1; i <= 2; i++)
        {
            stub.Behaviors[$"10.0.0.{i}:8080"] = (_, _) => Task.FromResult(ServiceUnavailable(TimeSpan.FromSeconds(120)));
        }

        var call = host.CreateClient().GetAsync("http://catalog/");
        var waited = await FakeTime.AdvanceUntilAsync(time, () => call.IsCompleted, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(40));
        Assert.InRange(waited, TimeSpan.Zero, TimeSpan.FromSeconds(1)); // two backoffs of at most RetryMaxDelay (250 ms)
        using var response = await call;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(120), response.Headers.RetryAfter?.Delta);
        Assert.Equal(3, stub.Total);
    }

    [Theory]
    [InlineData(60, null, 60)] // out for as long as it asked
    [InlineData(3600, "00:00:40", 40)] // capped at MaxEjectionTime
    public async Task RetryAfter_KeepsItsEndpointOutOfThePicks_ForThatLong(int retryAfterSeconds, string? maxEjectionTime, int outForSeconds)
    {
        var (host, stub, time) = Create(s =>
        {
            s["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
            s["Mesh:Resilience:RetryMaxDelay"] = "00:00:00"; // the retry of the call that met the 503 goes at once
            if (maxEjectionTime is not null)
            {
                s["Mesh:Resilience:BaseEjectionTime"] = "00:00:10";
                s["Mesh:Resilience:MaxEjectionTime"] = maxEjectionTime;
            }
        });
        await using var _ = host;
        stub.Behaviors["10.0.0.1:8080"] = (_, _) => Task.FromResult(ServiceUnavailable(TimeSpan.FromSeconds(retryAfterSeconds)));
        var client = host.CreateClient();

        // Round robin: without the rule the endpoint would take one call in four (and each such call a retry).
        for (var i = 0; i < 40; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(1, stub.Count("10.0.0.1:8080"));
        time.Advance(TimeSpan.FromSeconds(outForSeconds - 1));
        for (var i = 0; i < 8; i++)
        {
            (await client.GetAsync("http://catalog/")).Dispose();
        }

        Assert.Equal(1, stub.Count("10.0.0.1:8080"));
        time.Advance(TimeSpan.FromSeconds(2)); // the ejection ends: one probe
        await Poll.UntilAsync(async () =>
        {
            (await client.GetAsync("http://catalog/")).Dispose();
            return stub.Count("10.0.0.1:8080") == 2;
        });
    }

    [Fact]
    public async Task RetryAfter_WithMaxEjectionPercentZero_EjectsNothing()
    {
        var (host, stub, _) = Create(s =>
        {
            s["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
            s["Mesh:Resilience:RetryMaxDelay"] = "00:00:00";
            s["Mesh:Resilience:MaxEjectionPercent"] = "0"; // ejection is off, Retry-After's included
        });
        await using var _ = host;
        stub.Behaviors["10.0.0.1:8080"] = (_, _) => Task.FromResult(ServiceUnavailable(TimeSpan.FromSeconds(60)));
        var client = host.CreateClient();
        for (var i = 0; i < 40; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode); // its 503s are retried elsewhere
        }

        // Round robin over four: the endpoint keeps its turn (one call in four), where an ejection would leave it one.
        Assert.True(stub.Count("10.0.0.1:8080") >= 8, $"the endpoint took {stub.Count("10.0.0.1:8080")} attempts");
        Assert.All(host.Registry.GetTable("catalog").States, s => Assert.Equal(EndpointStatus.Healthy, s.Status));
    }

    private static HttpResponseMessage ServiceUnavailable(TimeSpan retryAfter)
    {
        var response = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
        response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(retryAfter);
        return response;
    }

    [Fact]
    public async Task AttemptTimeout_MovesTheCallToAnotherEndpoint()
    {
        var (host, stub, time) = Create(s =>
        {
            s["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
            s["Mesh:Resilience:AttemptTimeout"] = "00:00:01";
        });
        await using var _ = host;
        var hang = new TaskCompletionSource<HttpResponseMessage>();
        stub.Behaviors["10.0.0.1:8080"] = async (_, ct) =>
        {
            await Task.Delay(Timeout.Infinite, ct);
            return new HttpResponseMessage(HttpStatusCode.OK);
        };

        // Round robin starts at a random endpoint: call until one call hangs on the first endpoint.
        var client = host.CreateClient();
        Task<HttpResponseMessage>? hung = null;
        for (var i = 0; i < 4 && hung is null; i++)
        {
            var call = client.GetAsync("http://catalog/");
            await Task.Delay(20);
            if (!call.IsCompleted)
            {
                hung = call;
            }
            else
            {
                (await call).Dispose();
            }
        }

        Assert.NotNull(hung);
        var waited = await FakeTime.AdvanceUntilAsync(time, () => hung!.IsCompleted, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5));
        Assert.InRange(waited, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1.5)); // the attempt timeout, then the retry
        using var response = await hung!;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task TotalTimeout_EndsTheCall_WhateverTheAttemptsDo()
    {
        var (host, stub, time) = Create(s =>
        {
            s["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
            s["Mesh:Resilience:AttemptTimeout"] = "00:00:02";
            s["Mesh:Resilience:TotalTimeout"] = "00:00:03";
        });
        await using var _ = host;
        for (var i = 1; i <= 4; i++)
        {
            stub.Behaviors[$"10.0.0.{i}:8080"] = async (_, ct) =>
            {
                await Task.Delay(Timeout.Infinite, ct);
                return new HttpResponseMessage(HttpStatusCode.OK);
            };
        }

        var call = host.CreateClient().GetAsync("http://catalog/");
        await Poll.UntilAsync(() => stub.Total == 1);
        time.Advance(TimeSpan.FromSeconds(2)); // the first attempt times out; the second starts
        await Poll.UntilAsync(() => stub.Total == 2);
        time.Advance(TimeSpan.FromSeconds(1)); // the call's 3 s are up

        await Assert.ThrowsAsync<Polly.Timeout.TimeoutRejectedException>(() => call);
    }

    [Fact]
    public void RetryBudget_AllowsAPercentOfRequestsPlusAReserve_OverItsWindow()
    {
        var time = new FakeTimeProvider();
        var budget = new RetryBudget(time, percent: 20, minPerSecond: 1, window: TimeSpan.FromSeconds(10));
        for (var i = 0; i < 100; i++)
        {
            budget.OnRequest();
        }

        var granted = 0;
        while (budget.TryWithdraw())
        {
            granted++;
        }

        Assert.Equal(30, granted); // 20% of 100, plus 1/s × 10 s

        time.Advance(TimeSpan.FromSeconds(11)); // the window has moved on: requests and retries forgotten
        Assert.Equal(10, Enumerable.Range(0, 50).Count(_ => budget.TryWithdraw()));
    }

    [Theory]
    [InlineData("GET", true)]
    [InlineData("HEAD", true)]
    [InlineData("OPTIONS", true)]
    [InlineData("PUT", true)]
    [InlineData("DELETE", true)]
    [InlineData("POST", false)]
    [InlineData("PATCH", false)]
    public void Idempotency_FollowsRfc9110(string method, bool idempotent) =>
        Assert.Equal(idempotent, RetryPredicate.IsIdempotent(new HttpMethod(method)));
}
