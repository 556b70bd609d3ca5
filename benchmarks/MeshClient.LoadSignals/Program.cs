using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using MeshClient.Configuration;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

// Issue 18, load signals: four Kestrel backends on 127.0.0.1, one of them twice as loaded by other clients — it reports
// twice the utilization of the others for the same rate in its ORCA endpoint-load-metrics header — and the share of
// traffic it gets from the mesh under each policy. A second scenario makes the loaded one also slower, as a loaded
// server is: 15 ms against 5 ms of service time (an M/M/1 queue at 80% and 40% utilization answers in 5 S and 1.7 S).
// Shares do not depend on the machine's load.
//
//   dotnet run -c Release --project benchmarks/MeshClient.LoadSignals -- [--calls 20000] [--callers 8] [--out FILE]
var calls = Arg("--calls", 20_000);
var callers = Arg("--callers", 8);
var output = args.SkipWhile(a => a != "--out").Skip(1).FirstOrDefault() ?? Path.Combine(FindRepository(), "benchmarks", "results", "load-signals.md");

string[] policies = [LoadBalancerNames.WeightedRoundRobin, LoadBalancerNames.RoundRobin, LoadBalancerNames.PeakEwma, LoadBalancerNames.LeastRequest, LoadBalancerNames.Random];
(string Name, bool Slow)[] scenarios = [("reports 2× utilization, answers alike", false), ("reports 2× utilization, and answers in 15 ms against 5 ms", true)];
var results = new List<(string Scenario, string Policy, double[] Shares, double P50, double P99, double[] Service)>();
foreach (var scenario in scenarios)
{
    var backends = await Backend.StartFourAsync(scenario.Slow);
    try
    {
        await RunAsync(backends, LoadBalancerNames.RoundRobin, calls, callers); // the process's own warm-up, not reported
        foreach (var policy in policies)
        {
            var (shares, p50, p99) = await RunAsync(backends, policy, calls, callers);
            results.Add((scenario.Name, policy, shares, p50, p99, [.. backends.Select(b => b.MeanServiceMilliseconds)]));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{scenario.Name,-55} {policy,-18} {string.Join(" / ", shares.Select(Percent))}  loaded: {shares[3] / shares.Take(3).Average():F2}× the others' mean  p50 {p50:F2} ms  p99 {p99:F2} ms"));
        }
    }
    finally
    {
        foreach (var backend in backends)
        {
            await backend.DisposeAsync();
        }
    }
}

await File.WriteAllTextAsync(output, Report(results, calls, callers));
Console.WriteLine($"written: {output}");
return;

static async Task<(double[] Shares, double P50, double P99)> RunAsync(Backend[] backends, string policy, int calls, int callers)
{
    var settings = new Dictionary<string, string?>
    {
        ["Mesh:Services:catalog:LoadBalancer"] = policy,
        // A shorter blackout than gRPC's 10 s, so that the warm-up below is short; the rules are the same.
        ["Mesh:WeightedRoundRobin:BlackoutPeriod"] = "00:00:01",
    };
    for (var i = 0; i < backends.Length; i++)
    {
        settings[$"Mesh:Services:catalog:Endpoints:{i}:Address"] = backends[i].Address;
    }

    var services = new ServiceCollection();
    services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
    services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
    services.AddMesh();
    await using var provider = services.BuildServiceProvider();
    var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("bench");

    // Warm-up: 3 s of traffic (connections, JIT; every endpoint reports, the blackout passes, weights are computed).
    var warmUp = Stopwatch.StartNew();
    await Parallel.ForEachAsync(Enumerable.Range(0, callers), async (_, _) =>
    {
        while (warmUp.Elapsed < TimeSpan.FromSeconds(3))
        {
            (await client.GetAsync("http://catalog/")).Dispose();
        }
    });

    foreach (var backend in backends)
    {
        backend.Reset();
    }

    var latencies = new double[calls];
    var next = -1;
    await Parallel.ForEachAsync(Enumerable.Range(0, callers), async (_, _) =>
    {
        int i;
        while ((i = Interlocked.Increment(ref next)) < calls)
        {
            var started = Stopwatch.GetTimestamp();
            using var response = await client.GetAsync("http://catalog/");
            response.EnsureSuccessStatusCode();
            latencies[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }
    });

    Array.Sort(latencies);
    var total = backends.Sum(b => b.Count);
    return ([.. backends.Select(b => b.Count / (double)total)], latencies[calls / 2], latencies[(int)(calls * 0.99)]);
}

static string Report(List<(string Scenario, string Policy, double[] Shares, double P50, double P99, double[] Service)> results, int calls, int callers)
{
    var text = new StringBuilder();
    text.AppendLine("# Load signals: one of four endpoints reporting twice the load (issue 18)");
    text.AppendLine();
    text.AppendLine(CultureInfo.InvariantCulture, $"Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC with `dotnet run -c Release --project benchmarks/MeshClient.LoadSignals` ({calls:N0} GETs per cell, {callers} concurrent callers, after 3 s of warm-up).");
    text.AppendLine(CultureInfo.InvariantCulture, $"Machine: {Machine()}.");
    text.AppendLine();
    text.AppendLine("Four Kestrel backends on 127.0.0.1, in the process of the client. Three report");
    text.AppendLine("`endpoint-load-metrics: TEXT application_utilization=0.4, rps_fractional=100` (one of them in the JSON form),");
    text.AppendLine("the fourth `application_utilization=0.8` for the same rate: it is twice as loaded by other clients. In the second");
    text.AppendLine("scenario it also takes 15 ms to answer where the others take 5 ms (`Task.Delay`; an M/M/1 queue at 80% and 40%");
    text.AppendLine("utilization answers in 5 and 1.7 service times; asked of `Task.Delay`, the last column gives what the handlers really took");
    text.AppendLine("on this machine). Each scenario starts with one unreported RoundRobin run (the process's");
    text.AppendLine("warm-up), then each policy in turn with its own 3 s warm-up. `WeightedRoundRobin` runs with");
    text.AppendLine("`BlackoutPeriod` 1 s (default 10 s) so that the warm-up is short; every other option is the default. The shares are");
    text.AppendLine("counted by the backends; latency is the caller's, per GET. Shares do not depend on the machine's load; latencies do, and");
    text.AppendLine("the machine was shared (see the load average): read them as indicative only.");
    text.AppendLine();
    foreach (var scenario in results.Select(r => r.Scenario).Distinct())
    {
        text.AppendLine(CultureInfo.InvariantCulture, $"## The loaded endpoint {scenario}");
        text.AppendLine();
        text.AppendLine("| policy | share b0 | share b1 | share b2 | share of the loaded one (b3) | b3 ÷ the others' mean | p50 | p99 | service time b0–b2 / b3 (measured in the handler) |");
        text.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results.Where(r => r.Scenario == scenario))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {r.Policy} | {Percent(r.Shares[0])} | {Percent(r.Shares[1])} | {Percent(r.Shares[2])} | **{Percent(r.Shares[3])}** | {r.Shares[3] / r.Shares.Take(3).Average():F2}× | {r.P50:F2} ms | {r.P99:F2} ms | {r.Service.Take(3).Average():F2} / {r.Service[3]:F2} ms |");
        }

        text.AppendLine();
    }

    text.AppendLine("Expected from the reports alone (gRFC A58, weight = qps / utilization): 100 / 0.4 = 250 for each of the three, 100 / 0.8 = 125 for");
    text.AppendLine("the loaded one, so 2/7 = 28.6% each and 1/7 = 14.3%. The other policies see nothing of the reports: round robin and random");
    text.AppendLine("give it 25%; the load-aware ones move traffic only when its answers are slower.");
    return text.ToString();
}

static string Percent(double share) => (share * 100).ToString("F1", CultureInfo.InvariantCulture) + "%";

static string Machine()
{
    string Read(string path) => File.Exists(path) ? File.ReadAllText(path) : string.Empty;
    var cpu = Read("/proc/cpuinfo").Split('\n').FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) is { } line ? line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim() : RuntimeInformation.ProcessArchitecture.ToString();
    var os = Read("/etc/os-release").Split('\n').FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?["PRETTY_NAME=".Length..].Trim('"') ?? RuntimeInformation.OSDescription;
    return string.Create(CultureInfo.InvariantCulture, $"{cpu}, {Environment.ProcessorCount} cores, {os}, {RuntimeInformation.FrameworkDescription}, load average at the end {Read("/proc/loadavg").Trim()}");
}

static string FindRepository()
{
    for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
    {
        if (File.Exists(Path.Combine(directory.FullName, "MeshClient.sln")))
        {
            return directory.FullName;
        }
    }

    return Directory.GetCurrentDirectory();
}

int Arg(string name, int fallback) =>
    args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() is { } value ? int.Parse(value, CultureInfo.InvariantCulture) : fallback;

/// <summary>One backend: answers 200 with its ORCA report, after its service time.</summary>
internal sealed class Backend : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _count;
    private long _serviceTicks;

    private Backend(WebApplication app, string address)
    {
        _app = app;
        Address = address;
    }

    public string Address { get; }

    public int Count => Volatile.Read(ref _count);

    /// <summary>Gets the mean time the handler took since the last <see cref="Reset"/> (the service time it really had).</summary>
    public double MeanServiceMilliseconds => Count == 0 ? 0 : TimeSpan.FromTicks(Volatile.Read(ref _serviceTicks) / Count).TotalMilliseconds;

    public void Reset()
    {
        Interlocked.Exchange(ref _count, 0);
        Interlocked.Exchange(ref _serviceTicks, 0);
    }

    public static async Task<Backend[]> StartFourAsync(bool slowLoaded)
    {
        var backends = new Backend[4];
        for (var i = 0; i < 4; i++)
        {
            var report = i switch
            {
                2 => "JSON {\"application_utilization\": 0.4, \"rps_fractional\": 100}",
                3 => "TEXT application_utilization=0.8, rps_fractional=100",
                _ => "TEXT application_utilization=0.4, rps_fractional=100",
            };
            var delay = !slowLoaded ? TimeSpan.Zero : i == 3 ? TimeSpan.FromMilliseconds(15) : TimeSpan.FromMilliseconds(5);
            backends[i] = await StartAsync(report, delay);
        }

        return backends;
    }

    private static async Task<Backend> StartAsync(string report, TimeSpan delay)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        var app = builder.Build();
        Backend? self = null;
        app.Run(async context =>
        {
            var started = Stopwatch.GetTimestamp();
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay);
            }

            context.Response.Headers["endpoint-load-metrics"] = report;
            await context.Response.WriteAsync("ok");
            Interlocked.Add(ref self!._serviceTicks, Stopwatch.GetElapsedTime(started).Ticks);
            Interlocked.Increment(ref self._count);
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        self = new Backend(app, address);
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
