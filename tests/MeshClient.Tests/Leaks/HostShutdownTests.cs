using System.Net;
using MeshClient.Balancing;
using MeshClient.Consul;
using MeshClient.ConsulServer;
using MeshClient.Resilience;
using MeshClient.Tests.Consul;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Xunit.Abstractions;

namespace MeshClient.Tests.Leaks;

/// <summary>
/// Issue 8, part 5: stopping and disposing the host ends every Consul watch (the server sees its blocking queries
/// end), deregisters the service, and disposes the tables' keep-warm timers and the ejection timers, within 1 s of
/// wall time, with no unobserved task exception and no warning or error logged after the stop; calls in flight at
/// shutdown end by themselves.
/// </summary>
[Collection(LeakGroup.Name)]
public sealed class HostShutdownTests(ITestOutputHelper output)
{
    private static readonly TimeSpan OneSecond = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task StopAndDispose_EndsWatchesTimersAndRegistration_WithinOneSecond()
    {
        var unobserved = new List<Exception>();
        void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e)
        {
            lock (unobserved)
            {
                unobserved.Add(e.Exception);
            }
        }

        TaskScheduler.UnobservedTaskException += OnUnobserved;
        try
        {
            await RunAsync(unobserved);
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= OnUnobserved;
        }
    }

    private async Task RunAsync(List<Exception> unobserved)
    {
        await using var consul = await ConsulTestServer.StartAsync();
        await using var good = await TestBackend.StartAsync("good");
        await using var bad = await TestBackend.StartAsync("bad", c => { c.Response.StatusCode = 503; return Task.CompletedTask; });
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var slow = await TestBackend.StartAsync("slow", async c =>
        {
            await release.Task;
            c.Response.StatusCode = c.Request.Path == "/fail" ? 503 : 200;
        });
        consul.Register(Services.On(good, "web"));
        consul.Register(Services.On(bad, "web"));
        consul.Register(Services.On(slow, "api"));

        var time = new CountingTimeProvider(TimeProvider.System);
        var logs = new FakeLogCollector();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders().SetMinimumLevel(LogLevel.Debug).AddProvider(new FakeLoggerProvider(logs));
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Mesh:Consul:Address"] = consul.Address.ToString(),
            ["Mesh:Consul:Registration:Enabled"] = "true",
            ["Mesh:Consul:Registration:ServiceName"] = "orders",
            ["Mesh:LoadBalancer"] = "RoundRobin",
            ["Mesh:Resilience:ConsecutiveFailures"] = "1",
            ["Mesh:Resilience:MaxEjectionPercent"] = "50",
        });
        builder.Services.AddMesh().AddConsul();
        builder.Services.AddSingleton<TimeProvider>(time);
        var app = builder.Build();
        app.Run(c => c.Response.WriteAsync("orders"));
        await app.StartAsync();
        try
        {
            var client = app.Services.GetRequiredService<IHttpClientFactory>().CreateClient("caller");
            await Eventually.TrueAsync(() => consul.CountRequests("/v1/agent/service/register") > 0, TimeSpan.FromSeconds(10), "the service registers");
            for (var i = 0; i < 6; i++)
            {
                using var response = await client.GetAsync("http://web/");
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            var registry = app.Services.GetRequiredService<ServiceTableRegistry>();
            var detector = (OutlierDetector)app.Services.GetRequiredService<IEndpointHealthObserver>();
            Assert.Equal(1, detector.EjectionTimers); // "bad" is ejected for 30 s

            // Two calls are in flight at shutdown: one will succeed, one will fail (and would retry).
            var inFlight = new[] { client.GetAsync("http://api/ok"), client.GetAsync("http://api/fail") };
            await Eventually.TrueAsync(() => slow.Count == 2, TimeSpan.FromSeconds(10), "both calls reach the backend");
            await Eventually.TrueAsync(() => consul.WaitingQueries == 2, TimeSpan.FromSeconds(10), "both watches block on Consul");
            var cache = app.Services.GetRequiredService<ConsulCatalogCache>();
            var watches = new[] { cache.Find("web")!, cache.Find("api")! };
            var meshTimers = MeshTimers(time);
            output.WriteLine($"before stop: {consul.WaitingQueries} blocking queries, {consul.OpenConnections} connections open at the server, timers {Describe(time)}");
            Assert.Equal(2, meshTimers["ServiceTable"]);
            Assert.Equal(1, meshTimers["EjectionTimerState"]);

            var stopAt = TimeProvider.System.GetUtcNow();
            var stopping = TimeProvider.System.GetTimestamp();
            await app.StopAsync();
            var stopped = TimeProvider.System.GetElapsedTime(stopping);
            await app.DisposeAsync();
            var disposed = TimeProvider.System.GetElapsedTime(stopping);
            await Task.WhenAll(watches.Select(w => w.Completion)).WaitAsync(OneSecond);
            var queriesEnded = await Eventually.TrueAsync(() => consul.WaitingQueries == 0, OneSecond, "the server sees every blocking query end");
            var total = TimeProvider.System.GetElapsedTime(stopping);
            output.WriteLine($"StopAsync {stopped.TotalMilliseconds:F0} ms, DisposeAsync done at {disposed.TotalMilliseconds:F0} ms, watches ended and server-side queries at 0 at {total.TotalMilliseconds:F0} ms");
            output.WriteLine($"after dispose: {consul.WaitingQueries} blocking queries, {consul.OpenConnections} connections open at the server, timers {Describe(time)}");
            Assert.True(total < OneSecond, $"shutdown took {total}");

            // Left: only the timeouts of the two calls still in flight (one timer per call, armed for its total or its
            // attempt timeout, whichever ends first: Resilience/CallTimeout).
            Assert.Equal(new Dictionary<string, int> { ["CancellationTokenSource"] = 2 }, MeshTimers(time));
            Assert.Equal(0, detector.EjectionTimers);
            Assert.Empty(registry.Tables);
            Assert.Equal(0, cache.Count);
            Assert.True(consul.CountRequests("/v1/agent/service/deregister/") == 1, "the service deregisters");

            // The calls in flight end by themselves once their backend answers; nothing they do after the host is
            // gone logs a warning or starts a timer.
            release.SetResult();
            using (var ok = await inFlight[0].WaitAsync(TimeSpan.FromSeconds(5)))
            {
                Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            }

            // The failing one ends with its own answer: no retry once the mesh is disposed.
            using (var failed = await inFlight[1].WaitAsync(TimeSpan.FromSeconds(5)))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
            }

            Assert.Equal(2, slow.Count); // no further attempt
            await Eventually.TrueAsync(() => MeshTimers(time).Count == 0, OneSecond, "the calls' timeouts are disposed as they end");
            Assert.Equal(0, detector.EjectionTimers);
            var late = logs.GetSnapshot().Where(r => r.Timestamp >= stopAt && r.Level >= LogLevel.Warning).ToArray();
            Assert.True(late.Length == 0, "logged after stop: " + string.Join(" | ", late.Select(r => $"{r.Level} {r.Category} {r.Message} {r.Exception?.GetType().Name}")));
        }
        finally
        {
            release.TrySetResult();
            await app.DisposeAsync();
        }

        for (var i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        lock (unobserved)
        {
            Assert.True(unobserved.Count == 0, "unobserved task exceptions: " + string.Join(" | ", unobserved.Select(e => e.ToString())));
        }
    }

    /// <summary>Live timers the mesh owns (by their callback state), not those of Kestrel, HttpClient or the test.</summary>
    private static Dictionary<string, int> MeshTimers(CountingTimeProvider time) =>
        time.LiveByKind().Where(k => k.Value > 0).ToDictionary(k => k.Key, k => k.Value);

    private static string Describe(CountingTimeProvider time) =>
        string.Join(", ", time.LiveByKind().Select(k => $"{k.Key}: {k.Value}"));
}
