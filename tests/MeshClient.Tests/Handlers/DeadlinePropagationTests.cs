using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Polly.Timeout;

namespace MeshClient.Tests.Handlers;

/// <summary>
/// Issue 18, part 2, outbound: a mesh call made while a <see cref="MeshDeadline"/> is current is bounded by the time
/// left, sends it on (<c>mesh-timeout</c> for HTTP, <c>grpc-timeout</c> for gRPC when shorter than the call's own), is
/// not retried once it has passed, and is refused unsent when none is left. Real Kestrel backends; the mesh and the
/// deadline share a <see cref="FakeTimeProvider"/> that moves only when a test moves it, so every value is exact.
/// </summary>
public sealed class DeadlinePropagationTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10); // real time: a hang fails the test instead of blocking it

    private sealed class Fixture : IAsyncDisposable
    {
        private Fixture(Backends backends, MeshHost host, FakeTimeProvider time)
        {
            Backends = backends;
            Host = host;
            Time = time;
        }

        public Backends Backends { get; }

        public MeshHost Host { get; }

        public FakeTimeProvider Time { get; }

        public HttpClient Client => Host.CreateClient();

        /// <summary>Gets the deadline headers of every request the backends received, in order.</summary>
        public ConcurrentQueue<(string? MeshTimeout, string? GrpcTimeout)> Seen { get; } = new();

        public int Received => Backends.Sum(b => b.Count);

        /// <summary>Gets or sets what the backends do after recording a request; by default they answer 200 (gRPC: status 0).</summary>
        public Func<HttpContext, Task>? Behavior { get; set; }

        public static async Task<Fixture> StartAsync(int backends = 1, Action<Dictionary<string, string?>>? tune = null)
        {
            var started = await Infrastructure.Backends.StartAsync(backends);
            var settings = MeshHost.ServiceSettings("catalog", "RoundRobin", started.WithWeight(1));
            settings["Mesh:Resilience:MaxRetries"] = "2";
            settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:00"; // a retry goes at once: fake time moves only when told
            settings["Mesh:Resilience:RetryMaxDelay"] = "00:00:00";
            tune?.Invoke(settings);
            var time = FakeTime.Create();
            var host = MeshHost.Create(settings, services => services.AddSingleton<TimeProvider>(time));
            var fixture = new Fixture(started, host, time);
            foreach (var backend in started)
            {
                backend.Behavior = fixture.RecordAsync;
            }

            return fixture;
        }

        private Task RecordAsync(HttpContext context)
        {
            var headers = context.Request.Headers;
            Seen.Enqueue((headers.TryGetValue(MeshDeadline.HeaderName, out var mesh) ? mesh.ToString() : null,
                headers.TryGetValue("grpc-timeout", out var grpc) ? grpc.ToString() : null));
            if (Behavior is { } behave)
            {
                return behave(context);
            }

            if (context.Request.ContentType == "application/grpc")
            {
                context.Response.ContentType = "application/grpc";
                context.Response.Headers["grpc-status"] = "0";
                return Task.CompletedTask;
            }

            return context.Response.WriteAsync("ok");
        }

        public async ValueTask DisposeAsync()
        {
            await Host.DisposeAsync();
            await Backends.DisposeAsync();
        }
    }

    private static HttpRequestMessage GrpcRequest(string? timeout)
    {
        var content = new ByteArrayContent([0, 0, 0, 0, 0]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        var request = new HttpRequestMessage(HttpMethod.Post, "http://catalog/meshtests.Echo/Say") { Content = content, Version = HttpVersion.Version11 };
        if (timeout is not null)
        {
            request.Headers.TryAddWithoutValidation("grpc-timeout", timeout);
        }

        return request;
    }

    [Fact]
    public async Task AnHttpCall_UnderADeadline_SendsTheTimeLeft_AndWithoutOne_SendsNothing()
    {
        await using var fixture = await Fixture.StartAsync();
        var client = fixture.Client;
        (await client.GetAsync("http://catalog/warm")).Dispose();

        using (MeshDeadline.Begin(TimeSpan.FromSeconds(2), fixture.Time))
        {
            fixture.Time.Advance(TimeSpan.FromMilliseconds(500)); // spent by the caller before the call
            (await client.GetAsync("http://catalog/a")).Dispose();
        }

        (await client.GetAsync("http://catalog/b")).Dispose();
        Assert.Equal([(null, null), ("1500m", null), (null, null)], fixture.Seen.ToArray());
    }

    [Fact]
    public async Task AGrpcCall_GetsTheShorterOfItsOwnDeadlineAndTheInheritedOne_InGrpcTimeout()
    {
        await using var fixture = await Fixture.StartAsync();
        var client = fixture.Client;
        using (MeshDeadline.Begin(TimeSpan.FromMilliseconds(1500), fixture.Time))
        {
            using (var longer = GrpcRequest("5S"))
            using (var response = await client.SendAsync(longer))
            {
                Assert.Equal("0", Assert.Single(response.Headers.GetValues("grpc-status")));
            }

            using (var shorter = GrpcRequest("1S"))
            {
                (await client.SendAsync(shorter)).Dispose();
            }

            using (var none = GrpcRequest(null))
            {
                (await client.SendAsync(none)).Dispose();
            }
        }

        // Rewritten when the inherited deadline is the shorter (or the call had none); never mesh-timeout for gRPC.
        Assert.Equal([(null, "1500m"), (null, "1S"), (null, "1500m")], fixture.Seen.ToArray());
    }

    [Fact]
    public async Task ACallWhoseDeadlineHasPassed_IsNeverSent_HttpFailsWithDeadlineExceeded_GrpcGetsDeadlineExceeded()
    {
        await using var fixture = await Fixture.StartAsync();
        var client = fixture.Client;
        (await client.GetAsync("http://catalog/warm")).Dispose();

        using (MeshDeadline.Begin(TimeSpan.FromSeconds(1), fixture.Time))
        {
            fixture.Time.Advance(TimeSpan.FromSeconds(1));
            var ex = await Assert.ThrowsAsync<DeadlineExceededException>(() => client.GetAsync("http://catalog/late"));
            Assert.Equal("catalog", ex.ServiceName);
            Assert.Contains("not sent", ex.Message, StringComparison.Ordinal);

            using var request = GrpcRequest("5S");
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("4", Assert.Single(response.Headers.GetValues("grpc-status"))); // DEADLINE_EXCEEDED
        }

        Assert.Equal(1, fixture.Received); // the warm-up only
    }

    [Fact]
    public async Task TheDeadline_CancelsACallUnderWay_TheEndpointSeesItAborted_AndNoRetryFollows()
    {
        await using var fixture = await Fixture.StartAsync(backends: 2);
        var aborted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        fixture.Behavior = async context =>
        {
            try
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                aborted.TrySetResult();
            }
        };

        Task<HttpResponseMessage> call;
        using (MeshDeadline.Begin(TimeSpan.FromSeconds(1), fixture.Time))
        {
            call = fixture.Client.GetAsync("http://catalog/slow");
        }

        await Eventually.TrueAsync(() => fixture.Received == 1, Bound, "the call reached a backend");
        fixture.Time.Advance(TimeSpan.FromSeconds(1));

        var ex = await Assert.ThrowsAsync<DeadlineExceededException>(() => call.WaitAsync(Bound));
        Assert.IsType<TimeoutRejectedException>(ex.InnerException);
        await aborted.Task.WaitAsync(Bound); // the work nobody waits for stops
        Assert.Equal(1, fixture.Received); // and is not sent again
    }

    [Fact]
    public async Task ARetry_CarriesTheTimeLeftWhenItIsSent()
    {
        await using var fixture = await Fixture.StartAsync(backends: 2);
        var first = 1;
        fixture.Behavior = context =>
        {
            if (Interlocked.Exchange(ref first, 0) == 1)
            {
                fixture.Time.Advance(TimeSpan.FromMilliseconds(600)); // the first attempt takes 600 ms, then fails
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                return Task.CompletedTask;
            }

            return context.Response.WriteAsync("ok");
        };

        using (MeshDeadline.Begin(TimeSpan.FromSeconds(1), fixture.Time))
        {
            using var response = await fixture.Client.GetAsync("http://catalog/retried");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal([("1000m", null), ("400m", null)], fixture.Seen.ToArray());
    }

    [Fact]
    public async Task PropagationOff_MeshWide_OrPerService_LeavesCallsAlone_AndAReloadTurnsItBackOn()
    {
        await using var fixture = await Fixture.StartAsync(tune: s => s["Mesh:Deadlines:Propagate"] = "false");
        var client = fixture.Client;
        using (MeshDeadline.Begin(TimeSpan.FromSeconds(1), fixture.Time))
        {
            fixture.Time.Advance(TimeSpan.FromSeconds(2)); // passed, but not this mesh's business
            (await client.GetAsync("http://catalog/off")).Dispose();

            // Off mesh-wide, on for the service.
            var settings = MeshHost.ServiceSettings("catalog", "RoundRobin", fixture.Backends.WithWeight(1));
            settings["Mesh:Deadlines:Propagate"] = "false";
            settings["Mesh:Services:catalog:Deadlines:Propagate"] = "true";
            fixture.Host.Configuration.Replace(settings);
            await Assert.ThrowsAsync<DeadlineExceededException>(() => client.GetAsync("http://catalog/on"));

            // On mesh-wide (the default), off for the service.
            settings.Remove("Mesh:Deadlines:Propagate");
            settings["Mesh:Services:catalog:Deadlines:Propagate"] = "false";
            fixture.Host.Configuration.Replace(settings);
            (await client.GetAsync("http://catalog/off-for-catalog")).Dispose();
        }

        Assert.Equal([(null, null), (null, null)], fixture.Seen.ToArray());
    }

    [Fact]
    public async Task ADottedHostOutsideTheMesh_IsBoundedToo_RefusedOnceTheDeadlineHasPassed()
    {
        await using var fixture = await Fixture.StartAsync();
        using (MeshDeadline.Begin(TimeSpan.FromSeconds(1), fixture.Time))
        {
            fixture.Time.Advance(TimeSpan.FromSeconds(1));

            // Refused before any lookup: not the DNS failure that .invalid would otherwise give.
            var ex = await Assert.ThrowsAsync<DeadlineExceededException>(() => fixture.Client.GetAsync("http://nowhere.invalid/"));
            Assert.Equal("nowhere.invalid", ex.ServiceName);
        }
    }

    [Fact]
    public async Task APassThroughHost_IsNotAMeshCall_AndIsLeftAlone()
    {
        await using var fixture = await Fixture.StartAsync();
        using (MeshDeadline.Begin(TimeSpan.FromSeconds(1), fixture.Time))
        {
            fixture.Time.Advance(TimeSpan.FromSeconds(1));
            using var response = await fixture.Client.GetAsync(new Uri(fixture.Backends[0].Address, "/direct"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal([(null, null)], fixture.Seen.ToArray());
    }
}
