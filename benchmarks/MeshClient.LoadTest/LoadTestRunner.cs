using System.Diagnostics;
using System.Runtime;

namespace MeshClient.LoadTest;

/// <summary>
/// Runs the matrix: for each run, scenario, shape and contender (back to back, identical settings), one cell of
/// warm-up (not counted) and measurement, then writes the report.
/// </summary>
public static class LoadTestRunner
{
    public static async Task<LoadTestReport> RunAsync(LoadTestOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(log);
        var stopwatch = Stopwatch.StartNew();
        var machine = MachineInfo.Capture();
        var notes = new List<string>();
        var contenders = options.Contenders.ToList();
        string? nginxBinary = null;
        if (contenders.Contains(Contender.Nginx))
        {
            nginxBinary = NginxSidecar.FindBinary();
            if (nginxBinary is null)
            {
                contenders.Remove(Contender.Nginx);
                notes.Add("nginx: skipped, no nginx binary installed (optional contender; `apt-get install -y nginx-light` adds it).");
            }
            else
            {
                notes.Add($"nginx: {nginxBinary} ({NginxVersion(nginxBinary)}).");
            }
        }

        if (options.Rounds > 0)
        {
            return await RunRoundsAsync(options, log, machine, notes, contenders, stopwatch, cancellationToken);
        }

        log.WriteLine($"MeshClient.LoadTest: scenarios {string.Join(",", options.Scenarios)}; contenders {string.Join(",", contenders)}; shapes {string.Join(",", options.Shapes)}; {options.Duration.TotalSeconds:0.###} s per cell (+{options.Warmup.TotalSeconds:0.###} s warm-up)");
        log.WriteLine($"machine: {machine.CpuModel}, {machine.Cores} cores, {machine.MemoryGiB:0.#} GiB, {machine.Os}, {machine.Runtime}");

        var cells = new List<CellResult>();
        var completed = true;
        try
        {
            for (var run = 1; run <= options.Runs; run++)
            {
                var order = run % 2 == 1 ? contenders : Enumerable.Reverse(contenders).ToList();
                foreach (var scenario in options.Scenarios)
                {
                    var inScenario = order.Where(c => !LoadTestOptions.HealthyOnlyContenders.Contains(c) || scenario == Scenario.Healthy).ToList();
                    if (inScenario.Count == 0)
                    {
                        continue;
                    }

                    log.WriteLine($"run {run} · scenario {scenario}: {ScenarioEnvironment.Describe(scenario, options)}");
                    await using var environment = await ScenarioEnvironment.StartAsync(
                        scenario,
                        options,
                        yarp: inScenario.Contains(Contender.Yarp),
                        nginxBinary: inScenario.Contains(Contender.Nginx) ? nginxBinary : null,
                        log,
                        cancellationToken);
                    await environment.WarmUpProcessesAsync(cancellationToken);
                    foreach (var shape in options.Shapes)
                    {
                        foreach (var contender in inScenario)
                        {
                            cancellationToken.ThrowIfCancellationRequested();
                            var cell = await RunCellAsync(environment, contender, shape, run, options, cancellationToken);
                            cells.Add(cell);
                            log.WriteLine(
                                $"  {contender,-6} {shape,-4} n={cell.Count,8} ok={cell.SuccessPercent,7:0.00}% p50={cell.P50,8:0} p90={cell.P90,8:0} p99={cell.P99,8:0} p99.9={cell.P999,8:0} µs " +
                                $"{cell.RequestsPerSecond,8:0} req/s cpu={cell.ClientPlusProxyCpuMsPer1k,6:0.0} ms/1k alloc={cell.AllocatedBytesPerRequest / 1024,5:0.00} KB/req");
                        }
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            completed = false;
            notes.Add("The run was interrupted (Ctrl+C or SIGTERM): the report holds the cells completed before that.");
        }

        var report = new LoadTestReport(options, machine, cells, notes, stopwatch.Elapsed, completed, contenders);
        if (options.WriteFiles && cells.Count > 0)
        {
            var directory = options.OutDirectory ?? DefaultOutDirectory();
            report.WriteFiles(directory);
            log.WriteLine($"report: {Path.Combine(directory, LoadTestReport.MarkdownFile)}, {Path.Combine(directory, LoadTestReport.SvgFile)}");
        }

        log.WriteLine();
        log.WriteLine(report.TargetsMarkdown());
        return report;
    }

    /// <summary>
    /// The drift-robust comparison: the healthy servers start once; then, for each round, each shape, each contender
    /// (the order rotated left by one each round) a short cell. Writes <see cref="RoundsReport.MarkdownFile"/> only.
    /// </summary>
    private static async Task<LoadTestReport> RunRoundsAsync(
        LoadTestOptions options, TextWriter log, MachineInfo machine, List<string> notes, List<string> contenders, Stopwatch stopwatch, CancellationToken cancellationToken)
    {
        if (!options.Scenarios.SequenceEqual([Scenario.Healthy]) && options.Scenarios.Count != LoadTestOptions.AllScenarios.Count)
        {
            notes.Add("--rounds runs the healthy scenario only; --scenario was ignored.");
        }

        var perCell = options.Warmup + options.Duration;
        log.WriteLine($"MeshClient.LoadTest --rounds {options.Rounds}: contenders {string.Join(",", contenders)}; shapes {string.Join(",", options.Shapes)}; {options.Duration.TotalSeconds:0.###} s per cell (+{options.Warmup.TotalSeconds:0.###} s warm-up); about {(perCell * options.Rounds * contenders.Count * options.Shapes.Count).TotalMinutes:0.0} min");
        log.WriteLine($"machine: {machine.CpuModel}, {machine.Cores} cores, {machine.MemoryGiB:0.#} GiB, {machine.Os}, {machine.Runtime}");
        var cells = new List<CellResult>();
        var positions = new Dictionary<(int, string, string), int>();
        var completed = true;
        try
        {
            await using var environment = await ScenarioEnvironment.StartAsync(
                Scenario.Healthy,
                options,
                yarp: contenders.Contains(Contender.Yarp),
                nginxBinary: contenders.Contains(Contender.Nginx) ? NginxSidecar.FindBinary() : null,
                log,
                cancellationToken);
            await environment.WarmUpProcessesAsync(cancellationToken);
            for (var round = 1; round <= options.Rounds; round++)
            {
                var shift = (round - 1) % contenders.Count;
                var order = contenders.Skip(shift).Concat(contenders.Take(shift)).ToList();
                log.WriteLine($"round {round}/{options.Rounds}: order {string.Join(", ", order)}");
                foreach (var shape in options.Shapes)
                {
                    for (var i = 0; i < order.Count; i++)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        var cell = await RunCellAsync(environment, order[i], shape, round, options, cancellationToken);
                        cells.Add(cell);
                        positions[(round, order[i], shape)] = i + 1;
                        log.WriteLine(
                            $"  {order[i],-8} {shape,-4} n={cell.Count,8} ok={cell.SuccessPercent,7:0.00}% p50={cell.P50,8:0} p99={cell.P99,8:0} µs " +
                            $"{cell.RequestsPerSecond,8:0} req/s cpu={cell.ClientPlusProxyCpuMsPer1k,6:0.0} ms/1k alloc={cell.AllocatedBytesPerRequest / 1024,5:0.00} KB/req other={cell.OtherCpuPercent,3:0}%");
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            completed = false;
            notes.Add("The run was interrupted (Ctrl+C or SIGTERM): the report holds the cells completed before that.");
        }

        var rounds = new RoundsReport(options, machine, cells, notes, stopwatch.Elapsed, completed, contenders, positions);
        if (options.WriteFiles && cells.Count > 0)
        {
            var directory = options.OutDirectory ?? DefaultOutDirectory();
            rounds.WriteFile(directory);
            log.WriteLine($"report: {Path.Combine(directory, RoundsReport.MarkdownFile)}");
        }
        else
        {
            log.WriteLine(rounds.Markdown());
        }

        return new LoadTestReport(options, machine, cells, notes, stopwatch.Elapsed, completed, contenders);
    }

    internal static async Task<CellResult> RunCellAsync(
        ScenarioEnvironment environment, string name, string shape, int run, LoadTestOptions options, CancellationToken cancellationToken)
    {
        await using var contender = await Contenders.CreateAsync(name, environment, options);
        environment.Subscriber = contender;
        using var churnStop = new CancellationTokenSource();
        var churn = environment.Name == Scenario.Churn ? environment.RunChurnAsync(churnStop.Token) : Task.CompletedTask;
        try
        {
            var uri = contender.RequestUri;
            if (options.Warmup > TimeSpan.Zero)
            {
                _ = await RunShapeAsync(contender, uri, shape, options.Warmup, options, cancellationToken);
            }

            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            var hitsBefore = await environment.CountsAsync();
            var churnStart = environment.ChurnEvents;
            if (options.Announce)
            {
                // A line a script can wait for before attaching dotnet-trace or dotnet-counters (pid in the line).
                Console.Out.WriteLine(FormattableString.Invariant($"measuring {name} {shape} for {options.Duration.TotalSeconds:0.###} s (pid {Environment.ProcessId})"));
                Console.Out.Flush();
            }

            var before = Snapshot.Take(environment, contender);
            var result = await RunShapeAsync(contender, uri, shape, options.Duration, options, cancellationToken);
            var after = Snapshot.Take(environment, contender);
            var churnEvents = environment.ChurnEvents - churnStart;
            var hitsAfter = await environment.CountsAsync();

            // An interrupted cell is not a measurement: leave it out of the report.
            cancellationToken.ThrowIfCancellationRequested();
            return Summarize(environment, name, shape, run, result, before, after, hitsBefore, hitsAfter, churnEvents);
        }
        finally
        {
            await churnStop.CancelAsync();
            await churn;
            environment.Subscriber = null;
        }
    }

    private static Task<ShapeResult> RunShapeAsync(IContender contender, Uri uri, string shape, TimeSpan duration, LoadTestOptions options, CancellationToken cancellationToken) =>
        shape == Shape.Rate
            ? LoadGenerator.RunRateAsync(contender.NextClient, uri, options.Rate, duration, options.MaxInFlight, options.SendGrace, options.DrainCap, cancellationToken)
            : LoadGenerator.RunSaturationAsync(contender.NextClient, uri, options.Concurrency, duration, options.DrainCap, (long)(40_000 * duration.TotalSeconds), cancellationToken);

    private static CellResult Summarize(
        ScenarioEnvironment environment,
        string name,
        string shape,
        int run,
        ShapeResult result,
        Snapshot before,
        Snapshot after,
        Dictionary<int, long> hitsBefore,
        Dictionary<int, long> hitsAfter,
        int churnEvents)
    {
        var sorted = result.Latency.SortedMicroseconds();
        var count = sorted.LongLength;
        var per1k = count == 0 ? 0 : 1000.0 / count;
        long Delta(int id) => hitsAfter.GetValueOrDefault(id) - hitsBefore.GetValueOrDefault(id);
        var allIds = hitsAfter.Keys.Union(hitsBefore.Keys).ToList();
        var totalHits = allIds.Sum(Delta);
        var recorderBytes = result.Latency.AllocatedBytes + (result.SenderLag?.AllocatedBytes ?? 0);
        (double, double)? lag = null;
        if (result.SenderLag is { } senderLag)
        {
            var lagSorted = senderLag.SortedMicroseconds();
            lag = (LatencyRecorder.Percentile(lagSorted, 0.50), LatencyRecorder.Percentile(lagSorted, 0.99));
        }

        return new CellResult
        {
            Run = run,
            Scenario = environment.Name,
            Shape = shape,
            Contender = name,
            Count = count,
            Succeeded = count - result.Latency.Failures,
            P50 = LatencyRecorder.Percentile(sorted, 0.50),
            P90 = LatencyRecorder.Percentile(sorted, 0.90),
            P99 = LatencyRecorder.Percentile(sorted, 0.99),
            P999 = LatencyRecorder.Percentile(sorted, 0.999),
            Max = count == 0 ? double.NaN : sorted[^1],
            RequestsPerSecond = result.CompletedInWindow / result.Window.TotalSeconds,
            ClientCpuMsPer1k = (after.ClientCpu - before.ClientCpu).TotalMilliseconds * per1k,
            ProxyCpuMsPer1k = after.ProxyCpu is { } p && before.ProxyCpu is { } q ? (p - q).TotalMilliseconds * per1k : null,
            BackendsCpuMsPer1k = (after.BackendsCpu - before.BackendsCpu).TotalMilliseconds * per1k,
            AllocatedBytesPerRequest = count == 0 ? 0 : Math.Max(0, after.Allocated - before.Allocated - recorderBytes) / (double)count,
            Gen0 = after.Gen0 - before.Gen0,
            Gen1 = after.Gen1 - before.Gen1,
            Gen2 = after.Gen2 - before.Gen2,
            SenderLag = lag,
            BackendHitsPerRequest = count == 0 ? 0 : totalHits / (double)count,
            FaultyHitShare = environment.FaultyBackendId is { } faulty && totalHits > 0 ? Delta(faulty) / (double)totalHits : null,
            Hits = [.. environment.InitialBackendIds.Select(id => id == 0 ? 0 : Delta(id))],
            Errors = [.. result.Latency.Errors.OrderByDescending(e => e.Value)],
            ChurnEvents = churnEvents,
            Elapsed = result.Elapsed,
            OtherCpuPercent = OtherCpuPercent(before, after),
            StealPercent = Capacity(before, after) is var capacity && capacity > 0 ? 100 * (after.Machine.Steal - before.Machine.Steal).TotalMilliseconds / capacity : 0,
        };
    }

    /// <summary>
    /// CPU used by processes outside this run (other builds, tests, benchmarks on a shared machine) during the
    /// measured phase, in % of the machine: busy CPU of the whole machine − client − proxy − backends.
    /// </summary>
    private static double OtherCpuPercent(Snapshot before, Snapshot after)
    {
        var capacity = Capacity(before, after);
        if (capacity <= 0 || after.Machine.Busy == TimeSpan.Zero)
        {
            return 0;
        }

        var own = (after.ClientCpu - before.ClientCpu) + (after.BackendsCpu - before.BackendsCpu)
            + ((after.ProxyCpu ?? TimeSpan.Zero) - (before.ProxyCpu ?? TimeSpan.Zero));
        var busy = after.Machine.Busy - before.Machine.Busy;
        return Math.Max(0, 100 * (busy - own).TotalMilliseconds / capacity);
    }

    private static double Capacity(Snapshot before, Snapshot after) =>
        Stopwatch.GetElapsedTime(before.Timestamp, after.Timestamp).TotalMilliseconds * Environment.ProcessorCount;

    private static string DefaultOutDirectory()
    {
        for (var directory = new DirectoryInfo(Environment.CurrentDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "MeshClient.sln")))
            {
                return Path.Combine(directory.FullName, "benchmarks", "results");
            }
        }

        return Path.Combine(Environment.CurrentDirectory, "loadtest-results");
    }

    private static string NginxVersion(string binary)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(binary, "-v") { RedirectStandardError = true, UseShellExecute = false })!;
            var text = process.StandardError.ReadToEnd().Trim();
            process.WaitForExit(5000);
            return text;
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return "version unknown";
        }
    }

    /// <summary>The counters read before and after a measured phase.</summary>
    private readonly record struct Snapshot(
        TimeSpan ClientCpu, TimeSpan? ProxyCpu, TimeSpan BackendsCpu, long Allocated, int Gen0, int Gen1, int Gen2, MachineCpu Machine, long Timestamp)
    {
        public static Snapshot Take(ScenarioEnvironment environment, IContender contender)
        {
            using var self = Process.GetCurrentProcess();
            return new Snapshot(
                self.TotalProcessorTime,
                contender.SidecarCpuTime(),
                environment.Backends.CpuTime(),
                GC.GetTotalAllocatedBytes(precise: true),
                GC.CollectionCount(0),
                GC.CollectionCount(1),
                GC.CollectionCount(2),
                MachineCpu.Read(),
                Stopwatch.GetTimestamp());
        }
    }

    /// <summary>The whole machine's CPU time from the first line of /proc/stat (Linux; zero elsewhere).</summary>
    private readonly record struct MachineCpu(TimeSpan Busy, TimeSpan Steal)
    {
        public static MachineCpu Read()
        {
            try
            {
                var line = File.Exists("/proc/stat") ? File.ReadLines("/proc/stat").First() : string.Empty;
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 9 || f[0] != "cpu")
                {
                    return default;
                }

                long J(int i) => long.Parse(f[i], System.Globalization.CultureInfo.InvariantCulture);

                // user nice system idle iowait irq softirq steal; USER_HZ = 100. irq and softirq are left out: most
                // of them is the loopback traffic of this very run, which no process is charged for.
                return new MachineCpu(TimeSpan.FromMilliseconds((J(1) + J(2) + J(3)) * 10.0), TimeSpan.FromMilliseconds(J(8) * 10.0));
            }
            catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
            {
                return default;
            }
        }
    }

    internal static string GcDescription() =>
        $"{(GCSettings.IsServerGC ? "server" : "workstation")}, latency mode {GCSettings.LatencyMode}";
}
