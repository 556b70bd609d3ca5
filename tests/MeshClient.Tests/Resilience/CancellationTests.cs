using System.Diagnostics.Metrics;
using System.Net;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Resilience;
using MeshClient.Telemetry;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Resilience;

/// <summary>
/// Issue 8, part 5: a caller's cancellation (its token, or <see cref="HttpClient.Timeout"/>) stops a call at once,
/// in a retry backoff or while an attempt waits for its answer: no further attempt reaches a backend, in-flight
/// counters and <c>mesh.client.active_requests</c> return to 0, the retry budget is not charged for a retry that
/// was never sent, a cancelled probe gives its gate back, and a cancellation never counts against an endpoint.
/// The mesh runs on a <see cref="FakeTimeProvider"/> that does not move: "at once" needs no mesh time at all.
/// </summary>
public sealed class CancellationTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(5); // real time; a hang fails the test instead of blocking it

    private sealed class Fixture : IAsyncDisposable
    {
        private Fixture(Backends backends, MeshHost host, FakeTimeProvider time)
        {
            Backends = backends;
            Host = host;
            Time = time;
            var meters = host.Services.GetRequiredService<IMeterFactory>();
            Active = new MetricCollector<long>(meters, MeshTelemetry.MeterName, "mesh.client.active_requests");
            Retries = new MetricCollector<long>(meters, MeshTelemetry.MeterName, "mesh.client.retries");
            Ejections = new MetricCollector<long>(meters, MeshTelemetry.MeterName, "mesh.client.endpoint.ejections");
        }

        public Backends Backends { get; }

        public MeshHost Host { get; }

        public FakeTimeProvider Time { get; }

        public MetricCollector<long> Active { get; }

        public MetricCollector<long> Retries { get; }

        public MetricCollector<long> Ejections { get; }

        public int Aborted => _aborted;

        public int Total => Backends.Sum(b => b.Count);

        public ServiceTable Table => Host.Registry.GetTable("catalog");

        public RetryBudget Budget => Host.Services.GetRequiredService<ResilienceRegistry>().Get("catalog").Budget;

        private int _aborted;

        public static async Task<Fixture> StartAsync(int backends, Action<Dictionary<string, string?>>? tune = null)
        {
            var started = await Infrastructure.Backends.StartAsync(backends);
            var settings = MeshHost.ServiceSettings("catalog", LoadBalancerNames.RoundRobin, started.WithWeight(1));
            settings["Mesh:Resilience:MaxRetries"] = "3";
            settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:10"; // fake time never moves: a backoff lasts until cancelled
            settings["Mesh:Resilience:RetryMaxDelay"] = "00:00:10";
            tune?.Invoke(settings);
            var time = new FakeTimeProvider();
            var host = MeshHost.Create(settings, services => services.AddSingleton<TimeProvider>(time));
            return new Fixture(started, host, time);
        }

        /// <summary>Every backend answers 503 at once.</summary>
        public void AllFail()
        {
            foreach (var backend in Backends)
            {
                backend.Behavior = Fail;
            }
        }

        /// <summary>Every backend holds the request until the client goes away, and counts the abort.</summary>
        public void AllHang()
        {
            foreach (var backend in Backends)
            {
                backend.Behavior = HangAsync;
            }
        }

        public static Task Fail(HttpContext context)
        {
            context.Response.StatusCode = 503;
            return Task.CompletedTask;
        }

        public async Task HangAsync(HttpContext context)
        {
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref _aborted);
            }
        }

        public HttpClient Client(bool byTimeout)
        {
            var client = Host.CreateClient();
            if (byTimeout)
            {
                client.Timeout = TimeSpan.FromSeconds(1); // real time: long enough for an attempt to reach its backend
            }

            return client;
        }

        /// <summary>Starts a call cancelled by the caller's token (returned) or by the client's timeout.</summary>
        public (Task<HttpResponseMessage> Call, CancellationTokenSource Cancel) Start(HttpClient client)
        {
            var cancel = new CancellationTokenSource();
            return (client.GetAsync("http://catalog/", cancel.Token), cancel);
        }

        /// <summary>Moves mesh time far past every backoff and attempt timeout, and checks nothing else was sent.</summary>
        public async Task AssertNoFurtherAttemptAsync(int expected)
        {
            Time.Advance(TimeSpan.FromMinutes(2));
            await Task.Delay(100);
            Assert.Equal(expected, Total);
        }

        /// <summary>In-flight counters and the active-requests gauge are back at 0; nobody was ejected.</summary>
        public void AssertReleased()
        {
            Assert.All(Table.States, s => Assert.Equal(0, s.InFlight));
            Assert.Equal(0, Active.GetMeasurementSnapshot().Sum(m => m.Value));
            Assert.NotEmpty(Active.GetMeasurementSnapshot()); // the gauge did count the call
            Assert.Empty(Ejections.GetMeasurementSnapshot());
            Assert.All(Table.States, s => Assert.Equal(EndpointStatus.Healthy, s.Status));
        }

        public async ValueTask DisposeAsync()
        {
            Active.Dispose();
            Retries.Dispose();
            Ejections.Dispose();
            await Host.DisposeAsync();
            await Backends.DisposeAsync();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task CancelledDuringBackoff_StopsAtOnce_NoFurtherAttempt_BudgetNotCharged(bool byTimeout)
    {
        await using var f = await Fixture.StartAsync(3);
        f.AllFail();
        var client = f.Client(byTimeout);
        var (call, cancel) = f.Start(client);
        using var _ = cancel;

        // The first attempt failed and the retry was decided (charged to the budget): the call now sits in its backoff.
        await Poll.UntilAsync(() => f.Total == 1 && f.Budget.Retries == 1);
        var cancelled = TimeProvider.System.GetTimestamp();
        if (!byTimeout)
        {
            cancel.Cancel();
        }

        var ex = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call.WaitAsync(Bound));
        output.WriteLine($"call ended {TimeProvider.System.GetElapsedTime(cancelled).TotalMilliseconds:F1} ms (wall) after {(byTimeout ? "the backoff began; HttpClient.Timeout is 1 s" : "Cancel()")}, with no fake time advanced");
        Assert.Equal(byTimeout, ex.InnerException is TimeoutException);
        Assert.Equal(0, f.Budget.Retries); // the retry that never went out is given back (same budget window)
        Assert.Empty(f.Retries.GetMeasurementSnapshot()); // and not counted as a retry
        await f.AssertNoFurtherAttemptAsync(1);
        f.AssertReleased();
        Assert.All(f.Table.States, s => Assert.InRange(s.ConsecutiveFailures, 0, 1)); // only the real 503
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task CancelledWhileWaitingForAnAttempt_StopsAtOnce_AndIsNoFailure(bool byTimeout)
    {
        // Three cancelled attempts on one endpoint: more than the 2 consecutive failures that would eject it.
        await using var f = await Fixture.StartAsync(1, s => s["Mesh:Resilience:ConsecutiveFailures"] = "2");
        f.AllHang();
        var client = f.Client(byTimeout);
        for (var i = 1; i <= 3; i++)
        {
            var (call, cancel) = f.Start(client);
            using var _ = cancel;
            await Poll.UntilAsync(() => f.Total == i);
            if (!byTimeout)
            {
                cancel.Cancel();
            }

            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call.WaitAsync(Bound));
            await Poll.UntilAsync(() => f.Aborted == i); // the backend saw the request go away
        }

        Assert.Equal(0, f.Budget.Retries);
        await f.AssertNoFurtherAttemptAsync(3);
        Assert.Empty(f.Retries.GetMeasurementSnapshot());
        f.AssertReleased();
        Assert.All(f.Table.States, s => Assert.Equal(0, s.ConsecutiveFailures));
        Assert.All(f.Table.States, s => Assert.Equal(3, s.Requests));
    }

    [Fact]
    public async Task CancelledProbe_ReleasesTheProbeGate_AndIsNoVerdict()
    {
        await using var f = await Fixture.StartAsync(3, s =>
        {
            s["Mesh:Resilience:ConsecutiveFailures"] = "1";
            s["Mesh:Resilience:MaxEjectionPercent"] = "50";
            s["Mesh:Resilience:MaxRetries"] = "0";
        });
        var bad = f.Backends[0];
        bad.Behavior = Fixture.Fail;
        var client = f.Host.CreateClient();
        while (bad.Count == 0)
        {
            using var response = await client.GetAsync("http://catalog/");
        }

        var state = Assert.Single(f.Table.States, s => s.Id.Contains(":" + bad.Port + "/", StringComparison.Ordinal));
        Assert.Equal(EndpointStatus.Ejected, state.Status);
        f.Time.Advance(TimeSpan.FromSeconds(30)); // the ejection ends: the endpoint takes one probe
        Assert.Equal(EndpointStatus.Probing, state.Status);

        // The probe hangs and its caller gives up.
        bad.Behavior = f.HangAsync;
        var before = bad.Count;
        Task<HttpResponseMessage>? probe = null;
        CancellationTokenSource? probeCancel = null;
        for (var i = 0; i < 10 && probe is null; i++)
        {
            var (call, cancel) = f.Start(client);
            await Poll.UntilAsync(() => call.IsCompleted || bad.Count > before);
            if (bad.Count > before)
            {
                (probe, probeCancel) = (call, cancel);
            }
            else
            {
                (await call).Dispose();
                cancel.Dispose();
            }
        }

        Assert.NotNull(probe);
        probeCancel!.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => probe.WaitAsync(Bound));
        probeCancel.Dispose();
        Assert.Equal(EndpointStatus.Probing, state.Status); // no verdict: neither ejected again nor readmitted
        Assert.Equal(0, state.InFlight);

        // The gate is open again: the next probe goes out, succeeds and readmits the endpoint.
        bad.Behavior = null;
        for (var i = 0; i < 10 && state.Status != EndpointStatus.Healthy; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(EndpointStatus.Healthy, state.Status);
        Assert.Single(f.Ejections.GetMeasurementSnapshot()); // the one real ejection, none from the cancellation
        Assert.All(f.Table.States, s => Assert.Equal(0, s.InFlight));
        Assert.Equal(0, f.Active.GetMeasurementSnapshot().Sum(m => m.Value));
    }
}
