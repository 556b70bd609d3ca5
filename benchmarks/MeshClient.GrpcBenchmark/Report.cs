using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace MeshClient.GrpcBenchmark;

/// <summary>Writes the markdown report: the machine, the command, then per scenario the median [min–max] of the rounds.</summary>
internal static class Report
{
    public static string Write(BenchmarkOptions options, IReadOnlyList<Cell> cells, string arguments)
    {
        var s = new StringBuilder();
        s.AppendLine("# gRPC balancing: grpc-dotnet round_robin vs MeshClient (issue 14, item 6)");
        s.AppendLine();
        s.AppendLine(Machine());
        s.AppendLine();
        s.AppendLine("Command (from the repository root):");
        s.AppendLine();
        s.AppendLine("```sh");
        s.AppendLine($"dotnet run -c Release --project benchmarks/MeshClient.GrpcBenchmark -- {arguments}".TrimEnd());
        s.AppendLine("```");
        s.AppendLine();
        s.AppendLine(Inv($"Four Grpc.AspNetCore servers (h2c, `Protocols = Http2`) on 127.0.0.1 run in a child process (`--role servers`), so their CPU is not in the client's CPU and allocation figures; they share the machine's {Environment.ProcessorCount} cores with the client. Each cell: a fresh client, {options.Warmup.TotalSeconds:0.#} s of unmeasured warm-up, then {options.Concurrency} closed-loop callers for {options.Duration.TotalSeconds:0.#} s (saturation) making unary `Echo.Say` calls with no deadline. {options.Rounds} rounds; within a round every contender runs once per scenario, the order rotated by one each round. Figures are the **median of the rounds [min–max]**."));
        s.AppendLine();
        s.AppendLine("- **stock**: grpc-dotnet's own client-side balancing, `GrpcChannel.ForAddress(\"static:///echo\")` with a `StaticResolverFactory` of the four addresses, `LoadBalancingConfigs = { new RoundRobinConfig() }`, `ChannelCredentials.Insecure` (h2c), **no retry policy**.");
        s.AppendLine("- **stock-retry**: the same channel with grpc-dotnet's `RetryPolicy` on `MethodName.Default`: `RetryableStatusCodes = { Unavailable }`, `MaxAttempts = 5`, `InitialBackoff = 10 ms`, `MaxBackoff = 100 ms`, `BackoffMultiplier = 1.5`.");
        s.AppendLine("- **mesh**: `AddMesh()` + `AddGrpcClient<Echo.EchoClient>(o => o.Address = new Uri(\"http://echo\"))`, `Mesh:Services:echo:Endpoints` listing the four servers, every mesh setting at its default (PeakEwma, the mesh's own retries and ejection).");
        s.AppendLine();
        s.AppendLine("What grpc-dotnet's round_robin does with UNAVAILABLE: its picker rotates over the subchannels whose connection is ready, and a call's status does not change a subchannel's state (no health checking is configured here), so a server that answers every call with UNAVAILABLE over a healthy connection stays in the rotation and gets its quarter of the calls. Without a retry policy (**stock**) each of those calls fails to its caller. With grpc-dotnet's `RetryPolicy` (**stock-retry**) the call is sent again after gRPC's randomized backoff to whichever subchannel the picker gives next, the bad one included, so that server still receives a quarter of all attempts and a call fails only when all 5 attempts failed; grpc-dotnet buffers each call's request to replay it. The mesh counts UNAVAILABLE towards the endpoint's ejection and retries the call on another endpoint (README, gRPC: Statuses, Retries). No contender sets a deadline or a retry throttle.");
        s.AppendLine();
        s.AppendLine("Columns: *success* = calls that returned OK / calls completed in the measured window; *ok calls/s* = OK calls per second; *p50*, *p99* = latency of the OK calls (from the call's start, retries included); *B/call* = `GC.GetTotalAllocatedBytes(true)` delta over the measured window / calls (the whole client process: the callers' loop allocates nothing per call, so this is the client stack's cost, a failed call's `RpcException` included); *CPU µs/call* = the client process's CPU time over the window / calls; *to #4* = the attempts the bad server #4 received / the attempts all four received (server-side counts, retries included).");
        foreach (var scenario in options.Scenarios)
        {
            s.AppendLine();
            s.AppendLine(scenario == "slow"
                ? "## (a) One of four servers slow (+20 ms)"
                : "## (b) One of four servers answering UNAVAILABLE (trailers-only, at once)");
            s.AppendLine();
            s.AppendLine("| contender | success | ok calls/s | p50 ms | p99 ms | B/call | CPU µs/call | to #4 |");
            s.AppendLine("|---|---|---|---|---|---|---|---|");
            foreach (var contender in options.ContenderNames)
            {
                var rows = cells.Where(c => c.Scenario == scenario && c.Contender == contender).ToList();
                if (rows.Count == 0)
                {
                    continue;
                }

                s.AppendLine(Inv($"| {contender} | {Stat(rows, c => c.SuccessRate * 100, "F2", "%")} | {Stat(rows, c => c.OkPerSecond, "N0")} | {Stat(rows, c => c.P50Ms, "F2")} | {Stat(rows, c => c.P99Ms, "F2")} | {Stat(rows, c => c.BytesPerCall, "N0")} | {Stat(rows, c => c.CpuUsPerCall, "F0")} | {Stat(rows, c => c.ServerCalls == 0 ? 0 : 100.0 * c.BadServerCalls / c.ServerCalls, "F1", "%")} |"));
            }
        }

        s.AppendLine();
        s.AppendLine("## Every cell");
        s.AppendLine();
        s.AppendLine("| scenario | round | position | contender | calls | ok | ok calls/s | p50 ms | p99 ms | B/call | CPU µs/call | #4 / all attempts | load average after |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var c in cells)
        {
            s.AppendLine(Inv($"| {c.Scenario} | {c.Round} | {c.Position} | {c.Contender} | {c.Calls:N0} | {c.Ok:N0} | {c.OkPerSecond:N0} | {c.P50Ms:F2} | {c.P99Ms:F2} | {c.BytesPerCall:N0} | {c.CpuUsPerCall:F0} | {c.BadServerCalls:N0} / {c.ServerCalls:N0} | {c.LoadAverage} |"));
        }

        return s.ToString();
    }

    private static string Stat(List<Cell> rows, Func<Cell, double> select, string format, string unit = "")
    {
        var values = rows.Select(select).Order().ToArray();
        var median = values.Length % 2 == 1 ? values[values.Length / 2] : (values[(values.Length / 2) - 1] + values[values.Length / 2]) / 2;
        return values.Length == 1
            ? median.ToString(format, CultureInfo.InvariantCulture) + unit
            : $"{median.ToString(format, CultureInfo.InvariantCulture)}{unit} [{values[0].ToString(format, CultureInfo.InvariantCulture)}–{values[^1].ToString(format, CultureInfo.InvariantCulture)}]";
    }

    private static string Inv(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static string Machine()
    {
        var cpuinfo = Read("/proc/cpuinfo");
        var model = cpuinfo.Split('\n').Where(l => l.StartsWith("model name", StringComparison.Ordinal)).Select(l => l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim()).FirstOrDefault() ?? RuntimeInformation.ProcessArchitecture.ToString();
        var mhz = cpuinfo.Split('\n').Where(l => l.StartsWith("cpu MHz", StringComparison.Ordinal)).Select(l => l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim()).FirstOrDefault();
        var os = Read("/etc/os-release").Split('\n').FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?["PRETTY_NAME=".Length..].Trim('"') ?? RuntimeInformation.OSDescription;
        var memTotal = Read("/proc/meminfo").Split('\n').FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        var memGiB = memTotal is null ? 0 : double.Parse(memTotal.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024 / 1024;
        return Inv($"""
            - Machine: {model}{(mhz is null ? "" : $" ({mhz} MHz)")}, {Environment.ProcessorCount} cores{(cpuinfo.Contains(" hypervisor", StringComparison.Ordinal) ? " (virtual machine)" : "")}, {memGiB:F0} GiB, {os} ({RuntimeInformation.OSArchitecture}), kernel {Environment.OSVersion.Version}
            - .NET: SDK {Run("dotnet", "--version") ?? "?"}, runtime {RuntimeInformation.FrameworkDescription}, workstation concurrent GC; {Version(typeof(Grpc.Net.Client.GrpcChannel))}, {Version(typeof(Grpc.AspNetCore.Server.GrpcServiceOptions))} (servers), MeshClient at {Run("git", "describe --always --dirty --abbrev=12") ?? "?"}
            - Run: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC (end); load average at the end {Read("/proc/loadavg").Trim()}. The machine is shared (other engineers' builds may run on it).
            """);
    }

    private static string Version(Type type)
    {
        var assembly = type.Assembly;
        var version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? assembly.GetName().Version?.ToString() ?? "?";
        var plus = version.IndexOf('+', StringComparison.Ordinal);
        return $"{assembly.GetName().Name} {(plus > 0 ? version[..plus] : version)}";
    }

    private static string Read(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path) : string.Empty;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return string.Empty;
        }
    }

    private static string? Run(string file, string arguments)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false });
            if (process is null)
            {
                return null;
            }

            var text = process.StandardOutput.ReadToEnd().Trim();
            return process.WaitForExit(10_000) && process.ExitCode == 0 && text.Length > 0 ? text : null;
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
