using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using MeshClient.Balancing;
using MeshClient.ConsulServer;
using MeshClient.Status;
using MeshClient.Tests.Consul;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Xunit.Abstractions;

namespace MeshClient.Tests.Chaos;

/// <summary>Tests that measure the process itself (threads, memory, handles) run alone, after every other test.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ChaosTestGroup
{
    public const string Name = "Chaos";
}

/// <summary>
/// The chaos soak: real traffic (GETs and POSTs, loopback only) through a Consul-discovered mesh while backends are
/// killed and restarted at random (gracefully or by aborting their connections, on their old port or as new
/// instances), one turns slow, and the Consul server injects 500s and 429s and restarts with its index reset.
/// It lasts <c>MESH_CHAOS_SECONDS</c> (60 by default) and is reproducible with <c>MESH_CHAOS_SEED</c>.
/// </summary>
[Collection(ChaosTestGroup.Name)]
public sealed class ChaosSoakTests(ITestOutputHelper output)
{
    private const string Service = "orders";
    private const int BackendCount = 5;
    private const int Callers = 8;
    private const double RequestsPerSecond = 200;
    private static readonly TimeSpan HealPhase = TimeSpan.FromSeconds(8);

    /// <summary>
    /// Through Consul (its health checks take dead backends out of discovery, while Consul itself fails and
    /// restarts), and through static configuration (dead backends stay listed: outlier detection and retries alone
    /// keep the traffic whole; a backend back on a new port is published by a configuration reload).
    /// </summary>
    [Theory]
    [InlineData("consul", 60)]
    [InlineData("configuration", 30)]
    public async Task No_request_is_lost_or_duplicated_under_chaos(string discovery, int defaultSeconds)
    {
        var duration = TimeSpan.FromSeconds(ReadSetting("MESH_CHAOS_SECONDS", defaultSeconds));
        var seed = ReadSetting("MESH_CHAOS_SEED", Random.Shared.Next());
        Log($"seed {seed} (MESH_CHAOS_SEED), duration {duration.TotalSeconds:F0} s (MESH_CHAOS_SECONDS), {Callers} callers at {RequestsPerSecond} req/s");
        var random = new Random(seed);

        // Unobserved task exceptions of earlier tests surface at a GC: flush them before listening.
        CollectGarbage();
        var unobserved = new ConcurrentQueue<Exception>();
        EventHandler<UnobservedTaskExceptionEventArgs> onUnobserved = (_, e) => unobserved.Enqueue(e.Exception);
        TaskScheduler.UnobservedTaskException += onUnobserved;
        try
        {
            await RunAsync(discovery == "consul", duration, random, unobserved);
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= onUnobserved;
        }
    }

    private async Task RunAsync(bool useConsul, TimeSpan duration, Random random, ConcurrentQueue<Exception> unobserved)
    {
        var clock = Stopwatch.StartNew();
        var ledger = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        await using var consul = useConsul ? await ConsulTestServer.StartAsync() : null;
        var backends = new List<ChaosBackend>();
        for (var i = 0; i < BackendCount; i++)
        {
            var backend = new ChaosBackend($"orders-{i}", ledger);
            backends.Add(backend);
            await backend.StartAsync(samePort: false);
            consul?.Register(Definition(backend));
        }

        try
        {
            var logs = new FakeLogCollector();
            var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
            {
                // A backend slow during the chaos gets traffic again once its latency estimate has decayed: within
                // the heal phase with a 2 s decay time (the default 10 s takes about 50 s).
                ["Mesh:PeakEwma:DecayTime"] = "00:00:02",

                // Likewise a backend ejected during the chaos returns after its ejection: at most 10 s here.
                ["Mesh:Resilience:BaseEjectionTime"] = "00:00:05",
                ["Mesh:Resilience:MaxEjectionTime"] = "00:00:10",

                // Restarted and readmitted backends ramp up: slow start's timers churn with the chaos.
                ["Mesh:SlowStart:Window"] = "00:00:03",
            };
            if (consul is not null)
            {
                settings["Mesh:Consul:Address"] = consul.Address.ToString();
                settings["Mesh:Consul:Wait"] = "00:00:05";
                settings["Mesh:Consul:RetryBaseDelay"] = "00:00:00.050";
                settings["Mesh:Consul:RetryMaxDelay"] = "00:00:00.400";

                // The GETs are hedged too (adaptive, at the service's p95): races, cancelled losers and their leases
                // under kills and restarts, with every invariant below (in-flight counts back to 0, nothing unobserved).
                settings["Mesh:Resilience:Hedging:Enabled"] = "true";
                settings["Mesh:Resilience:Hedging:Percentile"] = "95";
            }

            Dictionary<string, string?> WithEndpoints()
            {
                var current = new Dictionary<string, string?>(settings, StringComparer.OrdinalIgnoreCase);
                for (var i = 0; i < backends.Count; i++)
                {
                    current[$"Mesh:Services:{Service}:Endpoints:{i}:Address"] = $"http://127.0.0.1:{backends[i].Port}";
                }

                return current;
            }

            await using var mesh = MeshHost.Create(consul is null ? WithEndpoints() : settings, services =>
            {
                services.AddLogging(b => b
                    .SetMinimumLevel(LogLevel.Debug)
                    .AddFilter("System.Net.Http", LogLevel.Warning)
                    .AddProvider(new FakeLoggerProvider(logs)));
                if (consul is not null)
                {
                    services.AddMesh().AddConsul();
                }

                // Every attempt of every call, so that a failed call's report says where each attempt went.
                services.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => new AttemptRecorder(new SocketsHttpHandler(), clock));
            });
            var client = mesh.CreateClient();
            var status = mesh.Services.GetRequiredService<IMeshStatus>();

            await Eventually.TrueAsync(
                async () =>
                {
                    try
                    {
                        // Consul lists an instance once its first health check passed: until then, none.
                        using var warmup = await client.GetAsync($"http://{Service}/warmup");
                    }
                    catch (NoHealthyEndpointException)
                    {
                    }

                    return LiveEndpoints(status).Count == BackendCount;
                },
                TimeSpan.FromSeconds(15),
                "every backend passes its check and is discovered");
            Log($"{clock.Elapsed.TotalSeconds,6:F1}s all {BackendCount} backends discovered");

            var results = new ConcurrentQueue<CallResult>();
            var probe = new ThreadPoolProbe();
            using var stop = new CancellationTokenSource();
            var probing = probe.RunAsync(stop.Token);
            var chaosEnds = clock.Elapsed + duration - HealPhase;
            using var stopTraffic = new CancellationTokenSource();
            var callers = Enumerable.Range(0, Callers)
                .Select(i => Task.Run(() => CallAsync(client, i, clock, results, stopTraffic.Token)))
                .ToArray();

            // Warm up on a healthy system, then take the baseline of memory and handles.
            await Task.Delay(TimeSpan.FromSeconds(Math.Min(5, duration.TotalSeconds / 6)));
            var baseline = ProcessSample.Take();
            Log($"{clock.Elapsed.TotalSeconds,6:F1}s baseline: {baseline}");

            var chaos = new ChaosMonkey(consul, backends, random, clock, Log, () => mesh.Configuration.Replace(WithEndpoints()));
            await chaos.RunAsync(chaosEnds);

            // Heal: every backend up and checked, Consul answering; the mesh must find them all again.
            await chaos.HealAsync();
            await Eventually.TrueAsync(
                () => LiveEndpoints(status).SetEquals(backends.Select(b => $"127.0.0.1:{b.Port}")),
                HealPhase, "after healing, discovery shows exactly the live backends");
            Log($"{clock.Elapsed.TotalSeconds,6:F1}s healed: the mesh sees exactly the {BackendCount} live backends");
            var before = backends.ToDictionary(b => b, b => b.Requests);
            List<string> Served() => [.. backends.Where(b => b.Requests > before[b]).Select(b => b.Name)];
            await Eventually.TrueAsync(() => Served().Count == BackendCount, HealPhase + HealPhase, "every healed backend takes traffic again");
            var served = Served();
            Log($"{clock.Elapsed.TotalSeconds,6:F1}s every backend serves again");
            await stopTraffic.CancelAsync();
            await Task.WhenAll(callers);

            await Eventually.TrueAsync(
                () => status.GetServices().SelectMany(s => s.Endpoints).All(e => e.InFlight == 0),
                TimeSpan.FromSeconds(5), "every in-flight counter returns to 0");
            await stop.CancelAsync();
            await probing;
            CollectGarbage();
            var end = ProcessSample.Take();
            Log($"{clock.Elapsed.TotalSeconds,6:F1}s end: {end}");

            Report(results, ledger, chaos, probe, baseline, end, served, consul, logs);

            // The invariants.
            var all = results.ToArray();
            var failedGets = all.Where(r => r.Method == "GET" && !r.Success).ToArray();
            Assert.True(failedGets.Length == 0, $"{failedGets.Length} GET(s) failed while at least one healthy backend existed:{Environment.NewLine}{Describe(failedGets)}");
            var duplicated = ledger.Where(p => p.Value > 1).ToArray();
            Assert.True(duplicated.Length == 0, $"{duplicated.Length} POST(s) executed more than once: {string.Join(", ", duplicated.Take(10).Select(p => $"{p.Key}×{p.Value}"))}");
            var lost = all.Where(r => r.Method == "POST" && r.Success && !ledger.ContainsKey(r.Id!)).ToArray();
            Assert.True(lost.Length == 0, $"{lost.Length} POST(s) answered 201 without being executed by any backend.");
            Assert.True(unobserved.IsEmpty, $"Unobserved task exceptions: {string.Join(Environment.NewLine, unobserved)}");
            Assert.True(probe.MaxDelay < TimeSpan.FromSeconds(1), $"Thread-pool starvation: a work item waited {probe.MaxDelay.TotalMilliseconds:F0} ms to run.");
            Assert.Equal(BackendCount, served.Count);
            Assert.True(end.ManagedBytes - baseline.ManagedBytes < 32 << 20, $"Managed memory grew from {baseline.ManagedBytes:N0} to {end.ManagedBytes:N0} bytes.");
            Assert.True(end.Handles - baseline.Handles < 64, $"Open handles grew from {baseline.Handles} to {end.Handles}.");
            Assert.True(end.Threads - baseline.Threads < 16, $"Threads grew from {baseline.Threads} to {end.Threads}.");
            var errors = logs.GetSnapshot().Where(r => r.Level >= LogLevel.Error).Select(r => r.Message).ToArray();
            Assert.True(errors.Length == 0, $"Error logs: {string.Join(Environment.NewLine, errors.Take(10))}");
        }
        finally
        {
            foreach (var backend in backends)
            {
                await backend.DisposeAsync();
            }
        }
    }

    private static async Task CallAsync(HttpClient client, int caller, Stopwatch clock, ConcurrentQueue<CallResult> results, CancellationToken stop)
    {
        var interval = TimeSpan.FromSeconds(Callers / RequestsPerSecond);
        var next = clock.Elapsed;
        var n = 0;
        while (!stop.IsCancellationRequested)
        {
            var post = n++ % 5 == 4;
            var id = post ? $"{caller}-{n}-{Guid.NewGuid():N}" : null;
            using var request = new HttpRequestMessage(post ? HttpMethod.Post : HttpMethod.Get, post ? $"http://{Service}/orders" : $"http://{Service}/items/{n}");
            if (post)
            {
                request.Headers.Add("X-Request-Id", id);
                request.Content = new StringContent("{\"sku\":42}", Encoding.UTF8, "application/json");
            }

            var started = clock.Elapsed;
            try
            {
                using var response = await client.SendAsync(request);
                var expected = post ? HttpStatusCode.Created : HttpStatusCode.OK;
                results.Enqueue(new CallResult(request.Method.Method, id, started, clock.Elapsed, response.StatusCode == expected, $"HTTP {(int)response.StatusCode}"));
            }
            catch (Exception ex)
            {
                var error = ex is HttpRequestException { HttpRequestError: var kind } ? $" ({kind})" : string.Empty;
                results.Enqueue(new CallResult(request.Method.Method, id, started, clock.Elapsed, false, $"{ex.GetType().Name}{error}: {ex.Message} {ex.InnerException?.Message}; attempts: {AttemptRecorder.Describe(request)}"));
            }

            next += interval;
            var wait = next - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, CancellationToken.None);
            }
            else
            {
                next = clock.Elapsed; // fell behind (slow answers): do not burst to catch up
            }
        }
    }

    private void Report(
        ConcurrentQueue<CallResult> results, ConcurrentDictionary<string, int> ledger, ChaosMonkey chaos, ThreadPoolProbe probe,
        ProcessSample baseline, ProcessSample end, List<string> served, ConsulTestServer? consul, FakeLogCollector collector)
    {
        var all = results.ToArray();
        foreach (var method in new[] { "GET", "POST" })
        {
            var calls = all.Where(r => r.Method == method).ToArray();
            var failed = calls.Count(r => !r.Success);
            var latencies = calls.Where(r => r.Success).Select(r => r.Ended - r.Started).OrderBy(t => t).ToArray();
            Log($"{method}: {calls.Length} sent, {calls.Length - failed} succeeded, {failed} failed; p50 {Percentile(latencies, 0.5)} ms, p99 {Percentile(latencies, 0.99)} ms, max {Percentile(latencies, 1)} ms");
        }

        Log($"POST ledger: {ledger.Count} executed, {ledger.Count(p => p.Value > 1)} more than once");
        foreach (var failure in all.Where(r => !r.Success).Take(20))
        {
            var executed = failure.Id is not null && ledger.ContainsKey(failure.Id) ? " (executed by a backend)" : failure.Id is not null ? " (not executed)" : string.Empty;
            Log($"  failed {failure.Method} at {failure.Started.TotalSeconds:F2}s..{failure.Ended.TotalSeconds:F2}s{executed}: {failure.Outcome}");
        }

        Log($"chaos: {chaos.Summary}");
        if (consul is not null)
        {
            Log($"consul: {consul.Requests.Count} requests, {consul.TotalConnections} connections");
        }

        Log($"thread pool: max scheduling delay {probe.MaxDelay.TotalMilliseconds:F1} ms, max threads {probe.MaxThreads}, max queue {probe.MaxQueue}");
        Log($"memory: managed {baseline.ManagedBytes:N0} -> {end.ManagedBytes:N0} bytes; handles {baseline.Handles} -> {end.Handles}; threads {baseline.Threads} -> {end.Threads}");
        Log($"served after healing: {string.Join(", ", served)}");
        var logs = collector.GetSnapshot();
        Log($"log records: {logs.Count} ({string.Join(", ", logs.GroupBy(r => (r.Category, r.Level)).OrderByDescending(g => g.Count()).Take(8).Select(g => $"{g.Key.Category}/{g.Key.Level}×{g.Count()}"))})");
        foreach (var record in logs.Where(r => r.Level >= LogLevel.Information && r.Category?.StartsWith("MeshClient", StringComparison.Ordinal) == true))
        {
            Log($"  log {(record.Timestamp - _started).TotalSeconds,6:F1}s {record.Level} {record.Id.Name}: {record.Message}");
        }
    }

    private static string Percentile(TimeSpan[] sorted, double p) =>
        sorted.Length == 0 ? "-" : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))].TotalMilliseconds.ToString("F1", CultureInfo.InvariantCulture);

    private static string Describe(IEnumerable<CallResult> calls) =>
        string.Join(Environment.NewLine, calls.Take(20).Select(r => $"  {r.Started.TotalSeconds:F2}s..{r.Ended.TotalSeconds:F2}s {r.Method} {r.Outcome}"));

    private static HashSet<string> LiveEndpoints(IMeshStatus status) =>
        status.GetServices().Where(s => s.Name == Service).SelectMany(s => s.Endpoints)
            .Select(e => new Uri(e.Address.Replace("*://", "http://", StringComparison.Ordinal)).Authority).ToHashSet();

    internal static ServiceDefinition Definition(ChaosBackend backend) => new()
    {
        Id = backend.ServiceId,
        Name = Service,
        Address = "127.0.0.1",
        Port = backend.Port,
        Checks =
        [
            new CheckDefinition
            {
                Http = $"http://127.0.0.1:{backend.Port}/health",
                Interval = TimeSpan.FromMilliseconds(500),
                Timeout = TimeSpan.FromMilliseconds(400),
            },
        ],
    };

    private static void CollectGarbage()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private static int ReadSetting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : fallback;

    private readonly DateTimeOffset _started = DateTimeOffset.UtcNow;

    private void Log(string line)
    {
        try
        {
            output.WriteLine(line);
        }
        catch (InvalidOperationException)
        {
            // The test has ended (a late line from a background loop).
        }
    }

    private sealed record CallResult(string Method, string? Id, TimeSpan Started, TimeSpan Ended, bool Success, string Outcome);

    private readonly record struct ProcessSample(long ManagedBytes, int Handles, int Threads)
    {
        public static ProcessSample Take()
        {
            CollectGarbage();
            using var process = Process.GetCurrentProcess();
            var handles = Directory.Exists("/proc/self/fd") ? Directory.GetFileSystemEntries("/proc/self/fd").Length : process.HandleCount;
            return new ProcessSample(GC.GetTotalMemory(forceFullCollection: true), handles, process.Threads.Count);
        }

        public override string ToString() => $"managed {ManagedBytes:N0} B, {Handles} handles, {Threads} threads";
    }

    /// <summary>Measures how long a work item waits for a thread-pool thread, every 50 ms.</summary>
    private sealed class ThreadPoolProbe
    {
        public TimeSpan MaxDelay { get; private set; }

        public int MaxThreads { get; private set; }

        public long MaxQueue { get; private set; }

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var queued = Stopwatch.GetTimestamp();
                var delay = await Task.Run(() => Stopwatch.GetElapsedTime(queued), CancellationToken.None);
                MaxDelay = delay > MaxDelay ? delay : MaxDelay;
                MaxThreads = Math.Max(MaxThreads, ThreadPool.ThreadCount);
                MaxQueue = Math.Max(MaxQueue, ThreadPool.PendingWorkItemCount);
                try
                {
                    await Task.Delay(50, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                }
            }
        }
    }
}

/// <summary>A primary handler that notes every attempt of a request (when, to which port, how it ended).</summary>
internal sealed class AttemptRecorder(HttpMessageHandler inner, Stopwatch clock) : DelegatingHandler(inner)
{
    private static readonly ConditionalWeakTable<HttpRequestMessage, ConcurrentQueue<string>> Attempts = new();

    public static string Describe(HttpRequestMessage request) =>
        Attempts.TryGetValue(request, out var attempts) ? string.Join(", ", attempts) : "none";

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var started = clock.Elapsed;
        var attempts = Attempts.GetOrCreateValue(request);
        try
        {
            var response = await base.SendAsync(request, cancellationToken);
            attempts.Enqueue($"{started.TotalSeconds:F2}s :{request.RequestUri?.Port} {(int)response.StatusCode}");
            return response;
        }
        catch (Exception ex)
        {
            attempts.Enqueue($"{started.TotalSeconds:F2}s :{request.RequestUri?.Port} {(ex is HttpRequestException { HttpRequestError: var kind } ? kind.ToString() : ex.GetType().Name)}");
            throw;
        }
    }
}
