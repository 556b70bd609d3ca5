using System.Diagnostics;
using System.Globalization;
using MeshClient.Balancing;
using MeshClient.Discovery;
using MeshClient.Resilience;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Benchmarks;

/// <summary>
/// <c>--scale</c>: the managed memory of the mesh's state with 1,000 services × 20 endpoints in use, stage by stage,
/// and what those services cost while idle (allocations, timers, thread-pool work per minute). Memory is measured
/// with <see cref="GC.GetTotalMemory(bool)"/> after full blocking compacting collections, so the figures are live
/// objects only (exact, whatever the machine's load); the same container without any service is the baseline.
/// BenchmarkDotNet measures time per operation, not what a process keeps: hence a console mode.
/// </summary>
internal static class ScaleReport
{
    public static async Task<int> RunAsync(string[] args)
    {
        var services = Option(args, "--services", 1000);
        var endpoints = Option(args, "--endpoints", 20);
        var calls = Option(args, "--calls", endpoints);
        var idleSeconds = Option(args, "--idle-seconds", 120);
        var usedSeconds = Option(args, "--used-seconds", 60);
        var dumpDirectory = args.SkipWhile(a => a != "--gcdump").Skip(1).FirstOrDefault();
        var total = services * endpoints;

        Console.WriteLine($"# Mesh state at scale: {services:N0} services × {endpoints} endpoints ({total:N0} endpoints), at least {calls} calls per service");
        Console.WriteLine();
        Console.WriteLine($"- runtime {Environment.Version}, {Environment.ProcessorCount} cores, server GC {System.Runtime.GCSettings.IsServerGC}, /proc/loadavg at start: {LoadAverage()}");

        // Pays once for everything static (JIT, reflection caches of the binder, Polly's and the factory's statics)
        // before anything is measured.
        await using (var warmUp = ScaleMesh.Build(new MutableConfigurationProvider(ScaleMesh.Settings(2, 2)), 2, 2, watched: false))
        {
            await PassThroughAsync(warmUp).ConfigureAwait(false);
            await warmUp.UseEveryServiceAsync(4).ConfigureAwait(false);
        }

        var rows = new List<(string Stage, long Bytes, TimeSpan Time, string Note)>();
        var clock = new Stopwatch();

        // The baseline: the same container, the same client and one call, with no service configured.
        var before = Heap();
        var timersBefore = Timer.ActiveCount;
        var baseline = ScaleMesh.Build(new MutableConfigurationProvider(new(StringComparer.OrdinalIgnoreCase)), 0, 0, watched: false);
        await PassThroughAsync(baseline).ConfigureAwait(false);
        var baselineBytes = Heap() - before;
        var baselineTimers = Timer.ActiveCount - timersBefore;
        await baseline.DisposeAsync().ConfigureAwait(false);
        Console.WriteLine($"- baseline container (AddMesh, the factory client, one pass-through call, no service): {Kb(baselineBytes)}, {baselineTimers} timer(s)");

        before = Heap();
        var configuration = new MutableConfigurationProvider(ScaleMesh.Settings(services, endpoints));
        _ = new Microsoft.Extensions.Configuration.ConfigurationRoot([configuration]); // loads it, as the container will
        var configurationBytes = Heap() - before;

        before = Heap();
        timersBefore = Timer.ActiveCount;
        clock.Restart();
        var mesh = ScaleMesh.Build(configuration, services, endpoints, watched: false);
        await PassThroughAsync(mesh).ConfigureAwait(false);
        rows.Add(("options bound and validated (the container over the baseline)", Heap() - before - baselineBytes, clock.Elapsed, "MeshOptions.Services: 1 options object per service and per endpoint"));

        await Dump(dumpDirectory, "1-container").ConfigureAwait(false);
        var stage = Heap();
        clock.Restart();
        await mesh.ResolveEveryServiceAsync().ConfigureAwait(false);
        rows.Add(("every table resolved (no call yet)", Heap() - stage, clock.Elapsed, "table, timer, snapshot, entries, endpoint states, the resolver's watcher and providers"));

        stage = Heap();
        clock.Restart();
        await mesh.UseEveryServiceAsync(1).ConfigureAwait(false);
        rows.Add(("first call to every service", Heap() - stage, clock.Elapsed, "Polly pipelines and retry budget per service; outlier state of the first endpoint"));

        stage = Heap();
        clock.Restart();
        await mesh.UseEveryServiceAsync(calls - 1, everyEndpoint: true).ConfigureAwait(false);
        rows.Add(($"{calls - 1} or more calls to every service, until every endpoint has had one", Heap() - stage, clock.Elapsed, "outlier state (failure window) of every other endpoint"));
        var inUse = Heap();
        var meshBytes = inUse - before - baselineBytes;
        var tables = mesh.Tables();
        var judged = tables.Sum(t => t.States.Count(s => s.Health is not null));
        var states = tables.Sum(t => t.States.Count);
        var pipelines = mesh.Provider.GetRequiredService<ResilienceRegistry>().Count;
        var timers = Timer.ActiveCount - timersBefore;
        await Dump(dumpDirectory, "2-in-use").ConfigureAwait(false);

        Console.WriteLine($"- configuration data (the application's IConfiguration: {services * endpoints:N0} keys and values, not counted below): {Mb(configurationBytes)}");
        Console.WriteLine($"- tables {tables.Length:N0}, endpoint states {states:N0}, with outlier state {judged:N0}, services with pipelines {pipelines:N0}");
        Console.WriteLine();
        Console.WriteLine("| stage | managed heap added | per endpoint | wall time (noisy) | what |");
        Console.WriteLine("|---|---:|---:|---:|---|");
        foreach (var (name, bytes, time, note) in rows)
        {
            Console.WriteLine($"| {name} | {Mb(bytes)} | {bytes / (double)total:N0} B | {time.TotalMilliseconds:N0} ms | {note} |");
        }

        Console.WriteLine($"| **mesh state, in use** | **{Mb(meshBytes)}** | **{meshBytes / (double)total:N0} B** | | **{Mb(meshBytes * 1000 / total)} per 1,000 endpoints** |");
        Console.WriteLine();
        Console.WriteLine($"Timers the mesh added (Timer.ActiveCount): {timers:N0} ({timers / (double)services:N2} per service); the options token links of the mesh's configuration provider: {mesh.Provider.GetServices<IServiceEndpointProviderFactory>().OfType<MeshConfigurationEndpointProviderFactory>().Single().OptionsTokenLinks:N0}.");
        Console.WriteLine();

        // Idle: nothing sent. Per 10 s window: bytes allocated by the whole process, timers, thread-pool work items, GCs.
        Console.WriteLine($"## Idle: {services:N0} services, nothing sent for {idleSeconds} s");
        Console.WriteLine();
        var idle = await WatchAsync(idleSeconds, null).ConfigureAwait(false);
        var idleHeap = Heap();
        Console.WriteLine();
        Console.WriteLine($"Managed heap after {idleSeconds} s idle: mesh state {Mb(idleHeap - before - baselineBytes)} ({(idleHeap - before - baselineBytes) * 1000 / total / 1024.0 / 1024:N2} MB per 1,000 endpoints); change while idle: {Kb(idleHeap - inUse)}.");
        Console.WriteLine();

        // In use, nothing sent: every table marked used each second, so each 5 s tick refreshes its discovery (what a
        // service with any traffic pays, whatever its rate).
        Console.WriteLine($"## In use: every table marked used each second (no request sent) for {usedSeconds} s: the refresh ticks");
        Console.WriteLine();
        await WatchAsync(usedSeconds, () =>
        {
            foreach (var table in tables)
            {
                table.MarkUsed();
            }
        }).ConfigureAwait(false);
        var usedHeap = Heap();
        Console.WriteLine();
        Console.WriteLine($"Managed heap after the refresh ticks: mesh state {Mb(usedHeap - before - baselineBytes)} ({(usedHeap - before - baselineBytes) * 1000 / total / 1024.0 / 1024:N2} MB per 1,000 endpoints).");
        Console.WriteLine($"/proc/loadavg at the end: {LoadAverage()}");
        GC.KeepAlive(idle);
        await mesh.DisposeAsync().ConfigureAwait(false);
        return 0;
    }

    /// <summary>Samples the process every 10 s for <paramref name="seconds"/>; returns the bytes allocated per minute.</summary>
    private static async Task<double> WatchAsync(int seconds, Action? eachSecond)
    {
        Console.WriteLine("| window | allocated | timers | thread-pool work items | GCs (0/1/2) | CPU |");
        Console.WriteLine("|---|---:|---:|---:|---|---:|");
        var process = Process.GetCurrentProcess();
        var startAllocated = GC.GetTotalAllocatedBytes(precise: true);
        var allocated = startAllocated;
        var items = ThreadPool.CompletedWorkItemCount;
        var cpu = process.TotalProcessorTime;
        var gcs = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
        var watch = Stopwatch.StartNew();
        for (var window = 10; window <= seconds; window += 10)
        {
            for (var s = 0; s < 10; s++)
            {
                eachSecond?.Invoke();
                await Task.Delay(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            }

            process.Refresh();
            var nowAllocated = GC.GetTotalAllocatedBytes(precise: true);
            var nowItems = ThreadPool.CompletedWorkItemCount;
            var nowCpu = process.TotalProcessorTime;
            var nowGcs = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
            Console.WriteLine($"| {window - 10}–{window} s | {Kb(nowAllocated - allocated)} | {Timer.ActiveCount:N0} | {nowItems - items:N0} | {nowGcs.Item1 - gcs.Item1}/{nowGcs.Item2 - gcs.Item2}/{nowGcs.Item3 - gcs.Item3} | {(nowCpu - cpu).TotalMilliseconds:N0} ms |");
            (allocated, items, cpu, gcs) = (nowAllocated, nowItems, nowCpu, nowGcs);
        }

        var perMinute = (allocated - startAllocated) * 60.0 / watch.Elapsed.TotalSeconds;
        Console.WriteLine();
        Console.WriteLine($"Allocated: {Kb(allocated - startAllocated)} in {watch.Elapsed.TotalSeconds:N0} s ({perMinute / 1024:N1} KB per minute).");
        return perMinute;
    }

    private static async Task PassThroughAsync(ScaleMesh mesh)
    {
        // An IP literal passes through the mesh: builds the client's handler chain and reads the options.
        using var response = await mesh.Client.GetAsync(new Uri("http://10.255.255.1:8080/")).ConfigureAwait(false);
        _ = mesh.Registry.Options.Current;
    }

    private static async Task Dump(string? directory, string name)
    {
        if (directory is null)
        {
            return;
        }

        Directory.CreateDirectory(directory);
        var tool = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".dotnet", "tools", "dotnet-gcdump");
        using var dump = Process.Start(new ProcessStartInfo(tool, ["collect", "-p", Environment.ProcessId.ToString(CultureInfo.InvariantCulture), "-o", Path.Combine(directory, name + ".gcdump")])
        {
            RedirectStandardOutput = true,
        })!;
        await dump.StandardOutput.ReadToEndAsync().ConfigureAwait(false);
        await dump.WaitForExitAsync().ConfigureAwait(false);
        Console.WriteLine($"- gcdump {name}: exit {dump.ExitCode}");
    }

    /// <summary>The live managed heap after full blocking compacting collections.</summary>
    private static long Heap()
    {
        for (var i = 0; i < 3; i++)
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }

        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static int Option(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }

    private static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";

    private static string Kb(long bytes) => $"{bytes / 1024.0:N1} KB";

    private static string Mb(long bytes) => $"{bytes / 1024.0 / 1024.0:N2} MB";
}
