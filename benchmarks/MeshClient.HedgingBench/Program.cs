using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

// Hedging under a tail (issue 18, part 1): four loopback Kestrel backends in a child process, backend #4 slow on 5% of
// its requests (+200 ms), an open model at --rate req/s through the mesh; latency from each request's intended send
// time (no coordinated omission). Cells: hedging off, adaptive (p95), fixed delay. Sends only to 127.0.0.1, stops by itself.
if (args.Contains("--role"))
{
    await Backends.RunAsync();
    return 0;
}

var options = Options.Parse(args);
using var child = Backends.Start();
var ports = await child.PortsAsync();
Console.WriteLine($"backends on 127.0.0.1:{string.Join(", ", ports)}; loadavg {LoadAverage()}");
var results = new List<CellResult>();
foreach (var round in Enumerable.Range(0, options.Rounds))
{
    var cells = round % 2 == 0 ? options.Cells : [.. options.Cells.AsEnumerable().Reverse()];
    foreach (var cell in cells)
    {
        var result = await Cell.RunAsync(cell, ports, child, options);
        results.Add(result with { Round = round + 1 });
        Console.WriteLine(results[^1].Line());
    }
}

var report = Report.Write(options, results);
Directory.CreateDirectory(Path.GetDirectoryName(options.Out)!);
await File.WriteAllTextAsync(options.Out, report);
Console.WriteLine($"written {options.Out}");
return 0;

static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";

internal sealed record Options(int Rate, TimeSpan Duration, TimeSpan Warmup, int Rounds, string[] Cells, string LoadBalancer, string Out, string CommandLine)
{
    public static Options Parse(string[] args)
    {
        string Get(string name, string fallback)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }

        static TimeSpan Seconds(string value) => TimeSpan.FromSeconds(double.Parse(value.TrimEnd('s'), CultureInfo.InvariantCulture));
        return new Options(
            int.Parse(Get("--rate", "1000"), CultureInfo.InvariantCulture),
            Seconds(Get("--duration", "30s")),
            Seconds(Get("--warmup", "5s")),
            int.Parse(Get("--rounds", "2"), CultureInfo.InvariantCulture),
            Get("--cells", "off,p95,fixed20").Split(','),
            Get("--lb", "RoundRobin"),
            Get("--out", "benchmarks/results/hedging.md"),
            string.Join(' ', args));
    }
}

internal sealed record CellResult(string Cell, string LoadBalancer, int Calls, int Errors, long Sent, long Hedges, long Refused, string Delays, double P50, double P90, double P99, double P999, double Max, string LoadBefore, string LoadAfter)
{
    public int Round { get; init; }

    public double Extra => Calls == 0 ? 0 : ((double)Sent / Calls) - 1;

    public string Line() => string.Create(CultureInfo.InvariantCulture,
        $"round {Round} {Cell,-8} {LoadBalancer}: calls {Calls} errors {Errors} sent {Sent} (extra {Extra:P2}) hedges {Hedges} refused by the budget {Refused} delay ms {Delays} p50 {P50:F2} p90 {P90:F2} p99 {P99:F2} p99.9 {P999:F2} max {Max:F1} ms; loadavg {LoadBefore} -> {LoadAfter}");
}

internal static class Cell
{
    public static async Task<CellResult> RunAsync(string cell, int[] ports, Backends child, Options options)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:Services:backend:LoadBalancer"] = options.LoadBalancer,
        };
        for (var i = 0; i < ports.Length; i++)
        {
            settings[$"Mesh:Services:backend:Endpoints:{i}:Address"] = $"http://127.0.0.1:{ports[i]}";
        }

        switch (cell)
        {
            case "off":
                break;
            case var percentile when percentile.StartsWith('p'):
                settings["Mesh:Resilience:Hedging:Enabled"] = "true";
                settings["Mesh:Resilience:Hedging:Percentile"] = percentile[1..];
                break;
            case var fixedDelay when fixedDelay.StartsWith("fixed", StringComparison.Ordinal):
                settings["Mesh:Resilience:Hedging:Enabled"] = "true";
                settings["Mesh:Resilience:Hedging:Delay"] = TimeSpan.FromMilliseconds(int.Parse(fixedDelay["fixed".Length..], CultureInfo.InvariantCulture)).ToString();
                break;
            default:
                throw new ArgumentException($"unknown cell {cell}");
        }

        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning).AddConsole());
        services.AddMesh();
        services.AddHttpClient("b");
        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("b");

        long hedges = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "MeshClient" && instrument.Name is "mesh.client.hedges" or "mesh.client.hedge_budget.exhausted" or "mesh.client.hedge.delay")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        long refused = 0;
        var delays = new List<double>();
        listener.SetMeasurementEventCallback<double>((_, value, _, _) =>
        {
            lock (delays)
            {
                delays.Add(value * 1000);
            }
        });
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "mesh.client.hedges")
            {
                Interlocked.Add(ref hedges, value);
            }
            else
            {
                Interlocked.Add(ref refused, value);
            }
        });
        listener.Start();

        await Pace(client, options.Rate, options.Warmup, record: null);
        var loadBefore = File.ReadAllText("/proc/loadavg").Trim();
        var sentBefore = await child.CountAsync();
        Interlocked.Exchange(ref hedges, 0);
        Interlocked.Exchange(ref refused, 0);
        lock (delays)
        {
            delays.Clear();
        }

        using var sampler = new Timer(_ => listener.RecordObservableInstruments(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        var latencies = new Recorder((int)(options.Rate * options.Duration.TotalSeconds * 1.2) + 1000);
        await Pace(client, options.Rate, options.Duration, latencies);
        await Task.Delay(500); // late losers reach their servers (already counted as sent when they did)
        var sent = await child.CountAsync() - sentBefore;
        var loadAfter = File.ReadAllText("/proc/loadavg").Trim();
        var sorted = latencies.Sorted();
        double At(double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
        return new CellResult(cell, options.LoadBalancer, sorted.Length, latencies.Errors, sent, Interlocked.Read(ref hedges), Interlocked.Read(ref refused), Spread(delays),
            At(0.50), At(0.90), At(0.99), At(0.999), sorted.Length == 0 ? double.NaN : sorted[^1], loadBefore, loadAfter);
    }

    /// <summary>The hedge delay sampled once a second: min / median / max in ms, or "-" for a cell that does not hedge.</summary>
    private static string Spread(List<double> delays)
    {
        lock (delays)
        {
            if (delays.Count == 0)
            {
                return "-";
            }

            var sorted = delays.Order().ToArray();
            return string.Create(CultureInfo.InvariantCulture, $"{sorted[0]:F1} / {sorted[sorted.Length / 2]:F1} / {sorted[^1]:F1}");
        }
    }

    /// <summary>An open model: request i is due at start + i / rate, sent then whatever the earlier ones do; its latency counts from then.</summary>
    private static async Task Pace(HttpClient client, int rate, TimeSpan duration, Recorder? record)
    {
        var frequency = Stopwatch.Frequency;
        var start = Stopwatch.GetTimestamp();
        var total = (long)(rate * duration.TotalSeconds);
        var inFlight = new List<Task>(capacity: 1024);
        for (long i = 0; i < total; i++)
        {
            var due = start + (i * frequency / rate);
            while (Stopwatch.GetTimestamp() < due)
            {
                var wait = (due - Stopwatch.GetTimestamp()) * 1000.0 / frequency;
                if (wait > 1.5)
                {
                    await Task.Delay(1);
                }
                else
                {
                    Thread.Yield();
                }
            }

            inFlight.Add(SendAsync(client, due, record));
            if (inFlight.Count >= 1024)
            {
                inFlight.RemoveAll(t => t.IsCompleted);
            }
        }

        await Task.WhenAll(inFlight);
    }

    private static async Task SendAsync(HttpClient client, long due, Recorder? record)
    {
        try
        {
            using var response = await client.GetAsync("http://backend/work");
            response.EnsureSuccessStatusCode();
            record?.Add(Stopwatch.GetElapsedTime(due).TotalMilliseconds);
        }
        catch (Exception)
        {
            record?.Error();
        }
    }
}

internal sealed class Recorder(int capacity)
{
    private readonly double[] _values = new double[capacity];
    private int _count;
    private int _errors;

    public int Errors => Volatile.Read(ref _errors);

    public void Add(double milliseconds)
    {
        var i = Interlocked.Increment(ref _count) - 1;
        if (i < _values.Length)
        {
            _values[i] = milliseconds;
        }
    }

    public void Error() => Interlocked.Increment(ref _errors);

    public double[] Sorted()
    {
        var values = _values.AsSpan(0, Math.Min(_count, _values.Length)).ToArray();
        Array.Sort(values);
        return values;
    }
}

/// <summary>The child process: four Kestrel backends on 127.0.0.1:0; #4 sleeps 200 ms on 5% of its requests. Commands on stdin: <c>count</c>.</summary>
internal sealed class Backends : IDisposable
{
    private readonly Process _process;

    private Backends(Process process) => _process = process;

    public static Backends Start()
    {
        var self = Environment.ProcessPath!;
        var dll = typeof(Backends).Assembly.Location;
        var start = new ProcessStartInfo(self) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            start.ArgumentList.Add(dll);
        }

        start.ArgumentList.Add("--role");
        start.ArgumentList.Add("backends");
        return new Backends(Process.Start(start)!);
    }

    public async Task<int[]> PortsAsync()
    {
        var line = await _process.StandardOutput.ReadLineAsync() ?? throw new InvalidOperationException("the backends did not start");
        return [.. line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(p => int.Parse(p, CultureInfo.InvariantCulture))];
    }

    public async Task<long> CountAsync()
    {
        await _process.StandardInput.WriteLineAsync("count");
        await _process.StandardInput.FlushAsync();
        var line = await _process.StandardOutput.ReadLineAsync();
        return long.Parse(line!, CultureInfo.InvariantCulture);
    }

    public void Dispose()
    {
        try
        {
            _process.StandardInput.Close(); // the child exits when its stdin closes
            if (!_process.WaitForExit(5000))
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        finally
        {
            _process.Dispose();
        }
    }

    public static async Task RunAsync()
    {
        long requests = 0;
        var apps = new List<WebApplication>();
        var ports = new List<int>();
        for (var i = 0; i < 4; i++)
        {
            var slow = i == 3;
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
            var app = builder.Build();
            app.Run(async context =>
            {
                Interlocked.Increment(ref requests);
                if (slow && Random.Shared.NextDouble() < 0.05)
                {
                    try
                    {
                        await Task.Delay(200, context.RequestAborted);
                    }
                    catch (OperationCanceledException)
                    {
                        return; // a hedge's loser, cancelled by the client
                    }
                }

                await context.Response.WriteAsync("ok");
            });
            await app.StartAsync();
            apps.Add(app);
            ports.Add(new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port);
        }

        Console.WriteLine("ports " + string.Join(' ', ports));
        string? command;
        while ((command = await Console.In.ReadLineAsync()) is not null)
        {
            if (command == "count")
            {
                Console.WriteLine(Interlocked.Read(ref requests).ToString(CultureInfo.InvariantCulture));
            }
        }

        foreach (var app in apps)
        {
            await app.StopAsync();
        }
    }
}

internal static class Report
{
    public static string Write(Options options, List<CellResult> results)
    {
        var s = new StringBuilder();
        var cpu = File.ReadAllLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':')[1].Trim();
        var mem = File.ReadAllLines("/proc/meminfo").First(l => l.StartsWith("MemTotal", StringComparison.Ordinal));
        var os = File.ReadAllLines("/etc/os-release").FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?["PRETTY_NAME=".Length..].Trim('"');
        s.AppendLine(CultureInfo.InvariantCulture, $"- CPU: {cpu}, {Environment.ProcessorCount} cores; {mem.Split(':')[1].Trim()} RAM; {os}; {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}; workstation concurrent GC");
        s.AppendLine(CultureInfo.InvariantCulture, $"- command: `dotnet run -c Release --project benchmarks/MeshClient.HedgingBench -- {options.CommandLine}`");
        s.AppendLine(CultureInfo.InvariantCulture, $"- {options.Rate} req/s open model, {options.Duration.TotalSeconds:0} s measured per cell after {options.Warmup.TotalSeconds:0} s of warm-up, {options.Rounds} round(s), cells interleaved; policy {options.LoadBalancer}");
        s.AppendLine();
        s.AppendLine("| round | cell | calls | errors | sent to servers | extra load | hedges (client) | refused by the budget | delay ms (min / median / max, each second) | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | /proc/loadavg before → after |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results)
        {
            s.AppendLine(CultureInfo.InvariantCulture, $"| {r.Round} | {r.Cell} | {r.Calls} | {r.Errors} | {r.Sent} | {r.Extra:P2} | {r.Hedges} | {r.Refused} | {r.Delays} | {r.P50:F2} | {r.P90:F2} | {r.P99:F2} | {r.P999:F2} | {r.Max:F1} | {r.LoadBefore} → {r.LoadAfter} |");
        }

        return s.ToString();
    }
}
