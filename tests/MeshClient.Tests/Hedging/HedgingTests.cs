using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net.Http.Headers;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Hedging;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Hedging;

/// <summary>
/// Hedged requests through the whole mesh, against real Kestrel backends and a real IHttpClientFactory, with the hedge
/// delay on a <see cref="FakeTimeProvider"/>: a call's first request (by its <c>x-call</c> header) hangs until the test
/// opens the gate or the client aborts it; every later request of the call answers at once.
/// </summary>
public sealed class HedgingTests
{
    private static readonly TimeSpan Delay = TimeSpan.FromMilliseconds(100);

    [Fact]
    public async Task ASlowAttempt_IsHedgedToAnotherEndpoint_WhichWins_AndTheLoserIsAbortedAndNotCharged()
    {
        await using var backends = await Backends.StartAsync(3);
        var script = new Script(backends);
        var time = FakeTime.Create();
        using var hedges = new HedgeCounter();
        await using var host = await CreateHostAsync(backends, time);

        var call = Send(host, "1");
        await Poll.UntilAsync(() => script.Received == 1);
        var slow = script.FirstBackend("1");
        time.Advance(Delay - TimeSpan.FromMilliseconds(1));
        await Task.Delay(50);
        Assert.Equal(1, script.Received); // not before the delay

        time.Advance(TimeSpan.FromMilliseconds(1));
        using var response = await call.WaitAsync(TimeSpan.FromSeconds(10));
        var winner = response.Headers.GetValues("X-Backend").Single();
        Assert.NotEqual(slow, winner); // the hedge went to another endpoint, and its answer won
        Assert.Equal(2, script.Received);
        Assert.Same(response.RequestMessage, call.Request);

        // The loser was cancelled: its server saw the abort …
        await Poll.UntilAsync(() => script.Aborted.Contains(slow));

        // … and its endpoint was charged nothing: no failure, no outcome in its counts, its attempt released.
        var loser = Endpoint(host, backends.Single(b => b.Name == slow));
        await Poll.UntilAsync(() => loser.State.InFlight == 0);
        Assert.Equal(0, loser.State.ConsecutiveFailures);
        Assert.Equal((0, 0), loser.State.LastMinute!.Sum());
        Assert.Equal(EndpointStatus.Healthy, loser.State.Status);
        Assert.Equal(1, loser.State.Requests);
        Assert.Equal((1, 0), Endpoint(host, backends.Single(b => b.Name == winner)).State.LastMinute!.Sum());
        Assert.Equal([(1L, "hedge")], hedges.Snapshot());
    }

    [Fact]
    public async Task TheFirstAttemptAnsweringBeforeTheDelay_SendsNoHedge()
    {
        await using var backends = await Backends.StartAsync(3);
        var script = new Script(backends);
        var time = FakeTime.Create();
        await using var host = await CreateHostAsync(backends, time);

        var call = Send(host, "1");
        await Poll.UntilAsync(() => script.Received == 1);
        time.Advance(Delay - TimeSpan.FromMilliseconds(10));
        script.Open();
        using var response = await call.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);

        time.Advance(TimeSpan.FromSeconds(1)); // long past the delay: nothing more goes out
        await Task.Delay(100);
        Assert.Equal(1, script.Received);
    }

    [Fact]
    public async Task APost_IsNeverHedged()
    {
        await using var backends = await Backends.StartAsync(3);
        var script = new Script(backends);
        var time = FakeTime.Create();
        await using var host = await CreateHostAsync(backends, time);

        var call = Send(host, "1", HttpMethod.Post, new StringContent("order"));
        await Poll.UntilAsync(() => script.Received == 1);
        for (var i = 0; i < 10; i++)
        {
            time.Advance(Delay);
            await Task.Delay(10);
        }

        Assert.Equal(1, script.Received);
        script.Open();
        using var response = await call.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, script.Received);
    }

    [Fact]
    public async Task TheBudget_RefusesAHedgeOnceSpent()
    {
        // 50% of requests and nothing per second: the first slow call may hedge (1 request allows 0.5), the second may
        // not (2 requests allow 1, already taken).
        await using var backends = await Backends.StartAsync(3);
        var script = new Script(backends);
        var time = FakeTime.Create();
        using var hedges = new HedgeCounter();
        await using var host = await CreateHostAsync(backends, time, s =>
        {
            s["Mesh:Resilience:Hedging:BudgetPercent"] = "50";
            s["Mesh:Resilience:Hedging:BudgetMinPerSecond"] = "0";
        });

        var first = Send(host, "1");
        await Poll.UntilAsync(() => script.Received == 1);
        time.Advance(Delay);
        using (await first.WaitAsync(TimeSpan.FromSeconds(10)))
        {
        }

        Assert.Equal(2, script.Received);

        var second = Send(host, "2");
        await Poll.UntilAsync(() => script.Received == 3);
        for (var i = 0; i < 5; i++)
        {
            time.Advance(Delay);
            await Task.Delay(10);
        }

        Assert.Equal(3, script.Received); // no hedge: the budget is spent
        script.Open();
        using (await second.WaitAsync(TimeSpan.FromSeconds(10)))
        {
        }

        Assert.Equal(3, script.Received);
        Assert.Equal([(1L, "hedge")], hedges.Snapshot());
    }

    [Theory]
    [InlineData("150m", false)] // 170 ms with the grace: at the 100 ms delay, 70 ms are left, less than the delay
    [InlineData("2S", true)]
    public async Task NoHedge_WhenTheDeadlineCannotBeMet(string grpcTimeout, bool hedged)
    {
        // The call's deadline comes from grpc-timeout (read for a request with a gRPC content type): a GET here, so that
        // it may be hedged at all.
        await using var backends = await Backends.StartAsync(3);
        var script = new Script(backends);
        var time = FakeTime.Create();
        await using var host = await CreateHostAsync(backends, time);
        var content = new ByteArrayContent([]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        var call = Send(host, "1", HttpMethod.Get, content, grpcTimeout);
        await Poll.UntilAsync(() => script.Received == 1);
        time.Advance(Delay);
        await Task.Delay(100);
        if (hedged)
        {
            await Poll.UntilAsync(() => script.Received == 2);
        }

        Assert.Equal(hedged ? 2 : 1, script.Received);
        script.Open();
        using var response = await call.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(hedged ? 2 : 1, script.Received);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public async Task MaxAttempts_BoundsTheAttemptsInFlight_EachOnAnotherEndpoint(int maxAttempts)
    {
        await using var backends = await Backends.StartAsync(4);
        var script = new Script(backends, slowPerCall: 10); // every request of the call hangs
        var time = FakeTime.Create();
        await using var host = await CreateHostAsync(backends, time, s =>
        {
            s["Mesh:Resilience:Hedging:MaxAttempts"] = maxAttempts.ToString(CultureInfo.InvariantCulture);
            s["Mesh:Resilience:Hedging:BudgetMinPerSecond"] = "100";
        });

        var call = Send(host, "1");
        await Poll.UntilAsync(() => script.Received == 1);
        for (var i = 1; i < maxAttempts; i++)
        {
            time.Advance(Delay);
            await Poll.UntilAsync(() => script.Received == i + 1);
        }

        for (var i = 0; i < 5; i++)
        {
            time.Advance(Delay);
            await Task.Delay(10);
        }

        Assert.Equal(maxAttempts, script.Received);
        Assert.Equal(maxAttempts, script.BackendsOf("1").Distinct().Count()); // never an endpoint already waiting
        script.Open();
        using var response = await call.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(maxAttempts, script.Received);
    }

    [Fact]
    public async Task AHedge_IsNotSent_WhenEveryOtherEndpointWasTried()
    {
        // One endpoint: the hedge could only go where the first attempt waits, so it is not sent (nor charged to the budget).
        await using var backends = await Backends.StartAsync(1);
        var script = new Script(backends);
        var time = FakeTime.Create();
        using var hedges = new HedgeCounter();
        await using var host = await CreateHostAsync(backends, time);
        var call = Send(host, "1");
        await Poll.UntilAsync(() => script.Received == 1);
        time.Advance(Delay * 3);
        await Task.Delay(100);
        Assert.Equal(1, script.Received);
        script.Open();
        using var response = await call.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, script.Received);
        Assert.Empty(hedges.Snapshot());
    }

    [Fact]
    public async Task AFailingHedge_DoesNotWin_WhileTheFirstAttemptIsInFlight()
    {
        // The hedge's endpoint answers 503 at once: the call waits for the first attempt, whose 200 wins.
        await using var backends = await Backends.StartAsync(2);
        var script = new Script(backends, laterStatus: 503);
        var time = FakeTime.Create();
        await using var host = await CreateHostAsync(backends, time, s => s["Mesh:Resilience:MaxRetries"] = "0");
        var call = Send(host, "1");
        await Poll.UntilAsync(() => script.Received == 1);
        time.Advance(Delay);
        await Poll.UntilAsync(() => script.Received == 2);
        await Task.Delay(100);
        Assert.False(call.Response.IsCompleted);
        script.Open();
        using var response = await call.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(script.FirstBackend("1"), response.Headers.GetValues("X-Backend").Single());
    }

    [Fact]
    public async Task TheAdaptiveDelay_CountsAFirstAttemptAHedgeOutran_AsSlowerThanEveryAnswer()
    {
        // Every call's first attempt hangs; its hedge, sent after the fixed 100 ms (the delay until 50 answers are
        // measured), answers at once. What the estimate knows of those first attempts is that each took longer than
        // 100 ms, so their median is unknown above it: the delay goes to MaxDelay, and hedging steps back until real
        // answer times are measured. Counting each call's answer time instead (100 ms, the hedge delay itself) kept the
        // delay at the 102.4 ms bucket: the estimate fed on its own delay, whatever the service's real latency.
        await using var backends = await Backends.StartAsync(3);
        var script = new Script(backends);
        var time = FakeTime.Create();
        await using var host = await CreateHostAsync(backends, time, s =>
        {
            s["Mesh:Resilience:Hedging:Percentile"] = "50";
            s["Mesh:Resilience:Hedging:MaxDelay"] = "00:00:00.400";
            s["Mesh:Resilience:Hedging:BudgetMinPerSecond"] = "1000";
        });

        for (var i = 0; i < HedgingSettings.MinLatencySamples; i++)
        {
            var call = Send(host, i.ToString(CultureInfo.InvariantCulture));
            await Poll.UntilAsync(() => script.Received == (2 * i) + 1);
            time.Advance(Delay);
            using var response = await call.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(2 * (i + 1), script.Received); // hedged at the fixed 100 ms every time
        }

        time.Advance(HedgingSettings.DelayRefresh);
        var policy = host.Services.GetRequiredService<MeshClient.Hedging.HedgingRegistry>().Get("catalog");
        Assert.Equal(TimeSpan.FromMilliseconds(400), policy.Delay(time.GetTimestamp()));

        AssertReportedDelay(host, 0.4, "catalog", route: null); // what mesh.client.hedge.delay reports
    }

    [Fact]
    public async Task ARouteWithHedgingOfItsOwn_HedgesItsCalls_AndTheServicesOtherRoutesDoNot()
    {
        // catalog routes /search to catalog-a with hedging of its own, every other call to catalog-a too, without: no
        // hedging is set for catalog-a or globally.
        await using var backends = await Backends.StartAsync(3);
        var script = new Script(backends);
        var time = FakeTime.Create();
        await using var host = await CreateRoutedHostAsync(backends, time, s =>
        {
            s["Mesh:Services:catalog:Routes:0:Hedging:Enabled"] = "true";
            s["Mesh:Services:catalog:Routes:0:Hedging:Delay"] = "00:00:00.100";
        });

        var search = Send(host, "1", path: "/search/shoes");
        await Poll.UntilAsync(() => script.Received == 1);
        time.Advance(Delay);
        using (var response = await search.WaitAsync(TimeSpan.FromSeconds(10)))
        {
            Assert.NotEqual(script.FirstBackend("1"), response.Headers.GetValues("X-Backend").Single());
        }

        Assert.Equal(2, script.Received);

        var other = Send(host, "2", path: "/items/42");
        await Poll.UntilAsync(() => script.Received == 3);
        for (var i = 0; i < 5; i++)
        {
            time.Advance(Delay);
            await Task.Delay(10);
        }

        Assert.Equal(3, script.Received); // the other route's calls are not hedged
        script.Open();
        using (await other.WaitAsync(TimeSpan.FromSeconds(10)))
        {
        }

        AssertReportedDelay(host, 0.1, "catalog-a", route: "search"); // under its backend and its name
    }

    [Fact]
    public async Task ARoute_CanTurnItsBackendsHedgingOff_AndTakesTheRestOfItsSettingsFromTheBackend()
    {
        // catalog-a hedges after 100 ms; the /search route turns hedging off; the other route sets nothing and hedges as
        // catalog-a does. Then a reload gives /search hedging with MaxAttempts 3, the delay still catalog-a's.
        await using var backends = await Backends.StartAsync(3);
        var script = new Script(backends, slowPerCall: 10);
        var time = FakeTime.Create();
        Dictionary<string, string?>? settings = null;
        await using var host = await CreateRoutedHostAsync(backends, time, s =>
        {
            s["Mesh:Services:catalog-a:Resilience:Hedging:Enabled"] = "true";
            s["Mesh:Services:catalog-a:Resilience:Hedging:Delay"] = "00:00:00.100";
            s["Mesh:Services:catalog-a:Resilience:Hedging:BudgetMinPerSecond"] = "100";
            s["Mesh:Services:catalog:Routes:0:Hedging:Enabled"] = "false";
            settings = s;
        });

        var search = Send(host, "1", path: "/search/shoes");
        await Poll.UntilAsync(() => script.Received == 1);
        for (var i = 0; i < 3; i++)
        {
            time.Advance(Delay);
            await Task.Delay(10);
        }

        Assert.Equal(1, script.Received); // not hedged

        var other = Send(host, "2", path: "/items/42");
        await Poll.UntilAsync(() => script.Received == 2);
        time.Advance(Delay);
        await Poll.UntilAsync(() => script.Received == 3); // hedged, as catalog-a's own calls
        for (var i = 0; i < 3; i++)
        {
            time.Advance(Delay);
            await Task.Delay(10);
        }

        Assert.Equal(3, script.Received); // MaxAttempts 2, catalog-a's

        settings!["Mesh:Services:catalog:Routes:0:Hedging:Enabled"] = "true";
        settings["Mesh:Services:catalog:Routes:0:Hedging:MaxAttempts"] = "3";
        host.Configuration.Replace(settings);
        var reloaded = Send(host, "3", path: "/search/boots");
        await Poll.UntilAsync(() => script.Received == 4);
        time.Advance(Delay);
        await Poll.UntilAsync(() => script.Received == 5);
        time.Advance(Delay);
        await Poll.UntilAsync(() => script.Received == 6);
        Assert.Equal(3, script.BackendsOf("3").Distinct().Count());

        script.Open();
        foreach (var call in new[] { search, other, reloaded })
        {
            using (await call.WaitAsync(TimeSpan.FromSeconds(10)))
            {
            }
        }
    }

    /// <summary>
    /// A mesh host where <c>catalog</c> routes <c>/search</c> (route <c>search</c>) and every other call (route
    /// <c>rest</c>) to <c>catalog-a</c>, whose endpoints are <paramref name="backends"/>; resolved, as for
    /// <see cref="CreateHostAsync"/>.
    /// </summary>
    private static async Task<MeshHost> CreateRoutedHostAsync(Backends backends, FakeTimeProvider time, Action<Dictionary<string, string?>> tune)
    {
        var settings = MeshHost.ServiceSettings("catalog-a", LoadBalancerNames.RoundRobin, backends.WithWeight(1));
        settings["Mesh:Services:catalog:Routes:0:Name"] = "search";
        settings["Mesh:Services:catalog:Routes:0:Match:PathPrefix"] = "/search";
        settings["Mesh:Services:catalog:Routes:0:Backends:0:Service"] = "catalog-a";
        settings["Mesh:Services:catalog:Routes:1:Name"] = "rest";
        settings["Mesh:Services:catalog:Routes:1:Backends:0:Service"] = "catalog-a";
        tune(settings);
        return await StartResolvedAsync(settings, time, "catalog-a");
    }

    /// <summary>
    /// A mesh host whose service is resolved: a service's very first call waits for discovery, and a try whose first
    /// attempt has not picked its endpoint is not hedged (its hedge would wait too).
    /// </summary>
    private static async Task<MeshHost> CreateHostAsync(Backends backends, FakeTimeProvider time, Action<Dictionary<string, string?>>? tune = null)
    {
        var settings = MeshHost.ServiceSettings("catalog", LoadBalancerNames.RoundRobin, backends.WithWeight(1));
        settings["Mesh:Resilience:Hedging:Enabled"] = "true";
        settings["Mesh:Resilience:Hedging:Delay"] = "00:00:00.100";
        tune?.Invoke(settings);
        return await StartResolvedAsync(settings, time, "catalog");
    }

    private static async Task<MeshHost> StartResolvedAsync(Dictionary<string, string?> settings, FakeTimeProvider time, string service)
    {
        var host = MeshHost.Create(settings, services => services.AddSingleton<TimeProvider>(time));
        var table = host.Registry.GetTable(service);
        await table.WaitForFirstResolutionAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.NotNull(table.Snapshot);
        return host;
    }

    /// <summary>Asserts that <c>mesh.client.hedge.delay</c> reports one delay in force, of this service and route.</summary>
    private static void AssertReportedDelay(MeshHost host, double seconds, string service, string? route)
    {
        using var gauge = new MetricCollector<double>(host.Services.GetRequiredService<IMeterFactory>(), MeshClient.Telemetry.MeshTelemetry.MeterName, "mesh.client.hedge.delay");
        gauge.RecordObservableInstruments();
        var reported = Assert.Single(gauge.GetMeasurementSnapshot());
        Assert.Equal(seconds, reported.Value, precision: 6);
        Assert.Equal(service, reported.Tags[MeshClient.Telemetry.MeshTags.Service]);
        Assert.Equal(route, reported.Tags.TryGetValue(MeshClient.Telemetry.MeshTags.Route, out var tag) ? tag : null);
    }

    private static SentCall Send(MeshHost host, string id, HttpMethod? method = null, HttpContent? content = null, string? grpcTimeout = null, string path = "/items")
    {
        var request = new HttpRequestMessage(method ?? HttpMethod.Get, "http://catalog" + path) { Content = content };
        request.Headers.Add("x-call", id);
        if (grpcTimeout is not null)
        {
            request.Headers.TryAddWithoutValidation("grpc-timeout", grpcTimeout);
        }

        return new SentCall(request, host.CreateClient().SendAsync(request));
    }

    private static EndpointEntry Endpoint(MeshHost host, TestBackend backend) =>
        host.Registry.GetTable("catalog").Snapshot!.All.Single(e => e.Address == backend.Address.ToString().TrimEnd('/'));

    private sealed record SentCall(HttpRequestMessage Request, Task<HttpResponseMessage> Response)
    {
        public Task<HttpResponseMessage> WaitAsync(TimeSpan timeout) => Response.WaitAsync(timeout);
    }

    /// <summary>What the backends do: the first <c>slowPerCall</c> requests of each call hang until the gate opens or the client aborts.</summary>
    private sealed class Script
    {
        private readonly ConcurrentDictionary<string, int> _seen = new(StringComparer.Ordinal);
        private readonly ConcurrentQueue<(string Call, string Backend)> _received = new();
        private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly int _slowPerCall;
        private readonly int _laterStatus;

        public Script(Backends backends, int slowPerCall = 1, int laterStatus = 200)
        {
            _slowPerCall = slowPerCall;
            _laterStatus = laterStatus;
            foreach (var backend in backends)
            {
                backend.Behavior = context => HandleAsync(backend.Name, context);
            }
        }

        public int Received => _received.Count;

        public ConcurrentQueue<string> Aborted { get; } = new();

        public string FirstBackend(string call) => _received.First(r => r.Call == call).Backend;

        public IEnumerable<string> BackendsOf(string call) => _received.Where(r => r.Call == call).Select(r => r.Backend);

        public void Open() => _gate.TrySetResult();

        private async Task HandleAsync(string name, HttpContext context)
        {
            var call = context.Request.Headers["x-call"].ToString();
            _received.Enqueue((call, name));
            var n = _seen.AddOrUpdate(call, 1, static (_, v) => v + 1);
            if (n <= _slowPerCall)
            {
                try
                {
                    await _gate.Task.WaitAsync(context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    Aborted.Enqueue(name);
                    return;
                }
            }
            else if (_laterStatus != 200)
            {
                context.Response.StatusCode = _laterStatus;
                return;
            }

            await context.Response.WriteAsync(name);
        }
    }

    /// <summary>Collects <c>mesh.client.hedges</c>: (hedges, winner) per hedged try.</summary>
    private sealed class HedgeCounter : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentQueue<(long, string)> _measurements = new();

        public HedgeCounter()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == MeshClient.Telemetry.MeshTelemetry.MeterName && instrument.Name == "mesh.client.hedges")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                var winner = string.Empty;
                foreach (var tag in tags)
                {
                    if (tag.Key == MeshClient.Telemetry.MeshTags.HedgeWinner)
                    {
                        winner = (string)tag.Value!;
                    }
                }

                _measurements.Enqueue((value, winner));
            });
            _listener.Start();
        }

        public (long, string)[] Snapshot() => [.. _measurements];

        public void Dispose() => _listener.Dispose();
    }
}
