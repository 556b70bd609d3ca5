using System.Net;
using MeshClient.Balancing;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Resilience;

/// <summary>
/// Requeues: a refused connection (nothing was sent) is retried at once on another endpoint, outside MaxRetries,
/// up to <see cref="Resilience.RetryPredicate.MaxRequeues"/> per call; on a FakeTimeProvider, so a backoff would
/// hang the call (the clock is never advanced here unless a test says so).
/// </summary>
public sealed class RequeueTests
{

    private static Task<HttpResponseMessage> Refuse(HttpRequestMessage request, CancellationToken _) =>
        Task.FromException<HttpResponseMessage>(new HttpRequestException(HttpRequestError.ConnectionError, $"Connection refused ({request.RequestUri!.Authority})"));

    /// <summary>Five endpoints, all marked unreachable except that the live one is still serving its ejection.</summary>
    private static async Task<(MeshHost Host, StubEndpoints Stub, FakeTimeProvider Time)> AllMarkedUnreachableAsync(int maxRetries, string live)
    {
        var time = FakeTime.Create();
        var (host, stub) = StubEndpoints.CreateHost(time, s =>
        {
            s["Mesh:Resilience:MaxRetries"] = maxRetries.ToString(System.Globalization.CultureInfo.InvariantCulture);
            s["Mesh:Resilience:UnreachableEjectionTime"] = "00:00:05";
            s["Mesh:Resilience:RetryBudgetMinPerSecond"] = "1000"; // the setup's failed calls must not spend the budget the test measures
            for (var i = 0; i < 5; i++)
            {
                s[$"Mesh:Services:catalog:Endpoints:{i}:Address"] = $"http://10.0.0.{i + 1}:8080";
            }
        });
        for (var i = 1; i <= 5; i++)
        {
            stub.Behaviors[$"10.0.0.{i}:8080"] = Refuse;
        }

        // Every endpoint refuses until each has been ejected as unreachable (the calls fail: nothing is up).
        var client = host.CreateClient();
        var table = host.Registry.GetTable("catalog");

        // The first resolution may still be running: with no state yet, the loop below would not run at all.
        await table.WaitForFirstResolutionAsync(CancellationToken.None);
        Assert.Equal(5, table.States.Count);
        for (var i = 0; i < 20 && table.States.Any(s => s.Status != EndpointStatus.Ejected); i++)
        {
            // Once every endpoint refused, the call's last retry waits for its backoff: the clock moves it on, by at
            // most 1 s in all (the ejections last 5 s).
            var call = client.GetAsync("http://catalog/");
            for (var step = 0; step < 20 && !call.IsCompleted; step++)
            {
                await Task.Delay(5);
                if (!call.IsCompleted && table.States.All(s => s.Status == EndpointStatus.Ejected))
                {
                    time.Advance(TimeSpan.FromMilliseconds(50));
                }
            }

            await Assert.ThrowsAsync<HttpRequestException>(() => call);
        }

        Assert.All(table.States, s => Assert.True(s.Status == EndpointStatus.Ejected && s.Unreachable));

        // One comes back, but its ejection has seconds to run.
        stub.Behaviors.TryRemove(live, out _);
        stub.Reset();
        return (host, stub, time);
    }

    [Fact]
    public async Task WithEveryEndpointMarkedUnreachable_ACallWalksThemAll_AtOnce_AndFindsTheOneBack()
    {
        const string Live = "10.0.0.3:8080";
        var (host, stub, _) = await AllMarkedUnreachableAsync(maxRetries: 2, Live);
        await using var _ = host;
        var client = host.CreateClient();

        // 1 attempt + 2 retries reach 3 of 5 endpoints: without requeues about 40% of these calls failed.
        for (var i = 0; i < 50; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(50, stub.Count(Live));
        Assert.True(stub.Total > 50, "some calls met a dead endpoint first, and were requeued");
    }

    [Fact]
    public async Task APostIsRequeuedToo_SinceNothingWasSent()
    {
        const string Live = "10.0.0.5:8080";
        var (host, stub, _) = await AllMarkedUnreachableAsync(maxRetries: 1, Live);
        await using var _ = host;
        var client = host.CreateClient();
        for (var i = 0; i < 20; i++)
        {
            using var response = await client.PostAsync("http://catalog/", new StringContent("{}"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(20, stub.Count(Live));
    }

    [Fact]
    public async Task Requeues_AreBounded_AndDoNotUseUpMaxRetries()
    {
        var time = FakeTime.Create();
        var (host, stub) = StubEndpoints.CreateHost(time, s =>
        {
            s["Mesh:Resilience:MaxRetries"] = "1";
            s["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
            s["Mesh:Resilience:ConsecutiveFailures"] = "0";
            s["Mesh:Resilience:FailurePercentageThreshold"] = "0";
            s["Mesh:Resilience:MaxEjectionPercent"] = "0"; // nothing is ejected: every attempt reaches the stub
            for (var i = 0; i < 8; i++)
            {
                s[$"Mesh:Services:catalog:Endpoints:{i}:Address"] = $"http://10.0.0.{i + 1}:8080";
            }
        });
        await using var _ = host;
        for (var i = 1; i <= 8; i++)
        {
            stub.Behaviors[$"10.0.0.{i}:8080"] = Refuse;
        }

        // Refused every time: 1 attempt, 4 requeues, then the 1 retry MaxRetries allows (6 attempts, 6 endpoints).
        var client = host.CreateClient();
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("http://catalog/"));
        Assert.Equal(6, stub.Total);
        Assert.All(Enumerable.Range(1, 8), i => Assert.InRange(stub.Count($"10.0.0.{i}:8080"), 0, 1));

        // A 503 is an answer, not a refusal: 1 attempt and 1 retry, as before.
        stub.Reset();
        for (var i = 1; i <= 8; i++)
        {
            stub.Behaviors[$"10.0.0.{i}:8080"] = (_, _) => StubEndpoints.Status(HttpStatusCode.ServiceUnavailable);
        }

        using var response = await client.GetAsync("http://catalog/");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(2, stub.Total);
    }

    [Fact]
    public async Task WithMaxRetriesZero_NothingIsRequeued()
    {
        var time = FakeTime.Create();
        var (host, stub) = StubEndpoints.CreateHost(time, s =>
        {
            s["Mesh:Resilience:MaxRetries"] = "0";
            s["Mesh:Resilience:MaxEjectionPercent"] = "0";
        });
        await using var _ = host;
        for (var i = 1; i <= 4; i++)
        {
            stub.Behaviors[$"10.0.0.{i}:8080"] = Refuse;
        }

        await Assert.ThrowsAsync<HttpRequestException>(() => host.CreateClient().GetAsync("http://catalog/"));
        Assert.Equal(1, stub.Total);
    }
}
