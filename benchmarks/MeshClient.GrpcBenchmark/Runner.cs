using System.Diagnostics;
using System.Globalization;
using Grpc.Core;
using MeshClient.GrpcBenchmark.Proto;
using MeshClient.LoadTest;

namespace MeshClient.GrpcBenchmark;

/// <summary>What one cell (one contender, one scenario, one round) measured.</summary>
internal sealed record Cell(string Scenario, int Round, int Position, string Contender)
{
    public long Calls { get; init; }

    public long Ok { get; init; }

    public double Seconds { get; init; }

    public double P50Ms { get; init; }

    public double P99Ms { get; init; }

    public double BytesPerCall { get; init; }

    public double CpuUsPerCall { get; init; }

    /// <summary>Calls (attempts, retries included) the bad server #4 received, and all four received, in the cell.</summary>
    public long BadServerCalls { get; init; }

    public long ServerCalls { get; init; }

    public string LoadAverage { get; init; } = "";

    public double SuccessRate => Calls == 0 ? 0 : (double)Ok / Calls;

    public double OkPerSecond => Ok / Seconds;
}

internal static class Runner
{
    private const int ServerCount = 4;
    private const int BadServer = ServerCount - 1;
    private const int Capacity = 1 << 17;

    public static async Task<List<Cell>> RunAsync(BenchmarkOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        await using var servers = ChildProcess.StartSelf("servers", ["--role", "servers", ServerCount.ToString(CultureInfo.InvariantCulture)], log);
        var ready = await servers.ReadLineAsync(TimeSpan.FromSeconds(30), cancellationToken);
        if (!ready.StartsWith("ready ", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"servers: unexpected '{ready}'");
        }

        var ports = ready["ready ".Length..].Split(' ').Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
        log.WriteLine($"servers on 127.0.0.1:{string.Join(", ", ports)} (pid {servers.Id}); #4 (:{ports[BadServer]}) is the bad one");

        var results = new List<Cell>();
        var buffers = Enumerable.Range(0, options.Concurrency).Select(_ => new int[Capacity]).ToArray(); // µs of successful calls
        foreach (var scenario in options.Scenarios)
        {
            await servers.CommandAsync(scenario == "slow" ? $"set {BadServer} 20 0" : $"set {BadServer} 0 {(int)StatusCode.Unavailable}", cancellationToken: cancellationToken);
            for (var round = 0; round < options.Rounds; round++)
            {
                var names = options.ContenderNames;
                var order = Enumerable.Range(0, names.Count).Select(i => names[(i + round) % names.Count]).ToArray();
                for (var position = 0; position < order.Length; position++)
                {
                    var cell = await RunCellAsync(options, servers, ports, buffers, new Cell(scenario, round + 1, position + 1, order[position]), cancellationToken);
                    results.Add(cell);
                    log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{cell.Scenario,-11} round {cell.Round} #{cell.Position} {cell.Contender,-11} ok {cell.SuccessRate:P2} ({cell.Ok}/{cell.Calls}), {cell.OkPerSecond:F0} ok/s, p50 {cell.P50Ms:F2} ms, p99 {cell.P99Ms:F2} ms, {cell.BytesPerCall:F0} B/call, {cell.CpuUsPerCall:F0} µs CPU/call, bad server {cell.BadServerCalls}/{cell.ServerCalls}; load {cell.LoadAverage}"));
                }
            }
        }

        await servers.CommandAsync($"set {BadServer} 0 0", cancellationToken: cancellationToken);
        return results;
    }

    private static async Task<Cell> RunCellAsync(BenchmarkOptions options, ChildProcess servers, int[] ports, int[][] buffers, Cell cell, CancellationToken cancellationToken)
    {
        await using var contender = Contenders.Create(cell.Contender, ports);
        var client = contender.Client;
        var request = new EchoRequest { Text = "hello" };
        var counts = new int[options.Concurrency];
        var failures = new long[options.Concurrency];
        var successes = new long[options.Concurrency];
        var phase = 0; // 0 warm-up, 1 measured, 2 stopping
        var measureStart = long.MaxValue;

        async Task WorkerAsync(int worker)
        {
            var buffer = buffers[worker];
            while (Volatile.Read(ref phase) != 2)
            {
                var start = Stopwatch.GetTimestamp();
                bool ok;
                try
                {
                    await client.SayAsync(request);
                    ok = true;
                }
                catch (RpcException)
                {
                    ok = false;
                }

                if (Volatile.Read(ref phase) == 1 && start >= Volatile.Read(ref measureStart))
                {
                    if (!ok)
                    {
                        failures[worker]++;
                    }
                    else if (++successes[worker] <= Capacity)
                    {
                        buffer[counts[worker]++] = (int)Math.Min(int.MaxValue, Stopwatch.GetElapsedTime(start).Ticks / 10);
                    }
                }
            }
        }

        var workers = Enumerable.Range(0, options.Concurrency).Select(i => Task.Run(() => WorkerAsync(i), CancellationToken.None)).ToArray();
        await Task.Delay(options.Warmup, cancellationToken);

        var countsBefore = await CountsAsync(servers, cancellationToken);
        var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        var bytesBefore = GC.GetTotalAllocatedBytes(precise: true);
        Volatile.Write(ref measureStart, Stopwatch.GetTimestamp());
        Volatile.Write(ref phase, 1);
        var clock = Stopwatch.StartNew();
        await Task.Delay(options.Duration, cancellationToken);
        Volatile.Write(ref phase, 2);
        var seconds = clock.Elapsed.TotalSeconds;
        var bytesAfter = GC.GetTotalAllocatedBytes(precise: true);
        process.Refresh();
        var cpuAfter = process.TotalProcessorTime;
        var countsAfter = await CountsAsync(servers, cancellationToken);
        if (await Task.WhenAny(Task.WhenAll(workers), Task.Delay(TimeSpan.FromSeconds(30), cancellationToken)) is not Task all || !all.IsCompleted)
        {
            throw new TimeoutException($"{cell.Contender}: callers did not stop within 30 s");
        }

        var latencies = new List<int>(counts.Sum());
        for (var i = 0; i < counts.Length; i++)
        {
            latencies.AddRange(buffers[i].AsSpan(0, counts[i]));
        }

        latencies.Sort();
        var ok = successes.Sum();
        var calls = ok + failures.Sum();
        double Percentile(double p) => latencies.Count == 0 ? double.NaN : latencies[Math.Min(latencies.Count - 1, (int)Math.Ceiling(p * latencies.Count) - 1)] / 1000.0;
        return cell with
        {
            Calls = calls,
            Ok = ok,
            Seconds = seconds,
            P50Ms = Percentile(0.50),
            P99Ms = Percentile(0.99),
            BytesPerCall = calls == 0 ? 0 : (double)(bytesAfter - bytesBefore) / calls,
            CpuUsPerCall = calls == 0 ? 0 : (cpuAfter - cpuBefore).TotalMicroseconds / calls,
            BadServerCalls = countsAfter[BadServer] - countsBefore[BadServer],
            ServerCalls = countsAfter.Zip(countsBefore, (a, b) => a - b).Sum(),
            LoadAverage = File.Exists("/proc/loadavg") ? (await File.ReadAllTextAsync("/proc/loadavg", cancellationToken)).Trim() : "",
        };
    }

    private static async Task<long[]> CountsAsync(ChildProcess servers, CancellationToken cancellationToken)
    {
        var answer = await servers.CommandAsync("counts", cancellationToken: cancellationToken);
        return answer["counts ".Length..].Split(' ').Select(c => long.Parse(c, CultureInfo.InvariantCulture)).ToArray();
    }
}
