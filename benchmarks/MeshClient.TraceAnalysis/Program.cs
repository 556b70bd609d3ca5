using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Etlx;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

namespace MeshClient.TraceAnalysis;

/// <summary>
/// Aggregates dotnet-trace files of load-test cells into a cost per request and per source.
///
///   dotnet run -c Release --project benchmarks/MeshClient.TraceAnalysis -- \
///       --cell raw=raw.nettrace:requests --cell mesh=mesh.nettrace:requests [--baseline raw] [--top 25]
///
/// CPU: the EventPipe sample profiler's Thread/Sample events of type Managed (a thread running managed code when the
/// sampler stopped it); each sample stands for one sampling interval (measured from the trace: its duration ÷ the
/// number of sampler ticks). Samples of type External (a thread in native code: blocked in a wait or epoll, or in a
/// syscall, the GC, the JIT) are counted but not attributed, because blocked and running cannot be told apart there.
/// Each Managed sample is charged to one source: walking the stack from the leaf up, the first frame that is not
/// generic plumbing (collections, strings, spans, ...) names the source.
///
/// Allocations: GCAllocationTick events (one per ~100 KB allocated, per heap), each carrying the bytes since the
/// previous tick; their sum is the allocation estimate, charged by the type allocated and, for the source, by the
/// same stack walk (a type rule first: async state-machine boxes, Activity, the options dictionary...).
/// </summary>
public static class Program
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static int Main(string[] args)
    {
        var cells = new List<(string Label, string Path, double Requests, double? CpuUs)>();
        var baseline = "raw";
        var perfCells = new List<(string Label, string Path, double Requests)>();
        var top = 25;
        string? dump = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--cell":
                    // label=path:requests[:measured client CPU µs per request, untraced]
                    var spec = args[++i];
                    var eq = spec.IndexOf('=');
                    var parts = spec[(eq + 1)..].Split(':');
                    cells.Add((spec[..eq], parts[0], double.Parse(parts[1], Inv), parts.Length > 2 ? double.Parse(parts[2], Inv) : null));
                    break;
                case "--perf":
                    // label=perf-script.txt:requests (perf record -g of the same kind of cell; true on-CPU samples)
                    var perfSpec = args[++i];
                    var perfEq = perfSpec.IndexOf('=');
                    var perfParts = perfSpec[(perfEq + 1)..].Split(':');
                    perfCells.Add((perfSpec[..perfEq], perfParts[0], double.Parse(perfParts[1], Inv)));
                    break;
                case "--baseline": baseline = args[++i]; break;
                case "--top": top = int.Parse(args[++i], Inv); break;
                case "--dump-stacks": dump = args[++i]; break;
                default:
                    Console.Error.WriteLine($"unknown option {args[i]}");
                    return 2;
            }
        }

        // A label may come twice: one trace with the CPU samples, one with the allocation ticks (tracing both at
        // once lets the stack walks of the allocation ticks show up in the CPU samples).
        var profiles = new List<Profile>();
        foreach (var (label, path, requests, cpuUs) in cells)
        {
            Console.Error.WriteLine($"reading {label}: {path}");
            var profile = profiles.FirstOrDefault(p => p.Label == label);
            if (profile is null)
            {
                profile = new Profile { Label = label };
                profiles.Add(profile);
            }

            profile.Read(path, requests, cpuUs, dump is null ? null : $"{dump}.{label}.{profiles.Count}.{Path.GetFileNameWithoutExtension(path)}.txt");
        }

        foreach (var (label, path, requests) in perfCells)
        {
            Console.Error.WriteLine($"reading perf {label}: {path}");
            var profile = profiles.FirstOrDefault(p => p.Label == label);
            if (profile is null)
            {
                profile = new Profile { Label = label };
                profiles.Add(profile);
            }

            profile.ReadPerf(path, requests, dump is null ? null : $"{dump}.{label}.perf.txt");
        }

        Console.WriteLine(Render(profiles, baseline, top));
        return 0;
    }

    private static string Render(List<Profile> profiles, string baseline, int top)
    {
        var sb = new StringBuilder();
        var b = profiles.FirstOrDefault(p => p.Label == baseline) ?? profiles[0];
        sb.AppendLine("### Trace summary");
        sb.AppendLine();
        sb.AppendLine("| cell | CPU trace s | requests in it | sampler interval ms | samples: running / idle | running thread time µs/req (samples) | measured CPU µs/req (untraced) | scale | alloc trace: requests | allocation events | event | allocated bytes/req (events) |");
        sb.AppendLine("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|");
        foreach (var p in profiles)
        {
            sb.AppendLine(F($"| {p.Label} | {p.DurationSeconds:0.0} | {p.CpuRequests:0} | {p.IntervalMs:0.000} | {p.RunningSamples} / {p.IdleSamples} | {p.RunningSamples * p.IntervalMs * 1000 / Math.Max(1, p.CpuRequests):0.0} | {(p.MeasuredCpuUs is { } m ? m.ToString("0.0", Inv) : "—")} | {p.CpuScale:0.000} | {p.AllocRequests:0} | {p.AllocTicks} | {p.AllocMethod} | {p.AllocBytes / Math.Max(1, p.AllocRequests):0} |"));
        }

        void Table(string title, Func<Profile, Dictionary<string, double>> pick, Func<Profile, double, double> perRequest, string unit, string format, int rows)
        {
            var keys = profiles.SelectMany(p => pick(p).Keys).Distinct()
                .Select(k => (Key: k, Max: profiles.Max(p => Math.Abs(perRequest(p, pick(p).GetValueOrDefault(k)) - (p == b ? 0 : 0)))))
                .ToList();
            var others = profiles.Where(p => p != b).ToList();
            // Order by the largest difference against the baseline (then by size).
            var ordered = keys
                .Select(k => (k.Key, Diff: others.Count == 0 ? 0 : others.Max(p => Math.Abs(perRequest(p, pick(p).GetValueOrDefault(k.Key)) - perRequest(b, pick(b).GetValueOrDefault(k.Key)))), k.Max))
                .OrderByDescending(k => k.Diff).ThenByDescending(k => k.Max)
                .Take(rows)
                .ToList();
            sb.AppendLine();
            sb.AppendLine($"### {title}");
            sb.AppendLine();
            sb.AppendLine("| source | " + string.Join(" | ", profiles.Select(p => $"{p.Label} {unit}")) + " | " + string.Join(" | ", others.Select(p => $"{p.Label} − {b.Label}")) + " |");
            sb.AppendLine("|---|" + string.Concat(profiles.Select(_ => "---:|")) + string.Concat(others.Select(_ => "---:|")));
            foreach (var (key, _, _) in ordered)
            {
                var values = profiles.Select(p => perRequest(p, pick(p).GetValueOrDefault(key)).ToString(format, Inv));
                var diffs = others.Select(p => (perRequest(p, pick(p).GetValueOrDefault(key)) - perRequest(b, pick(b).GetValueOrDefault(key))).ToString("+" + format + ";-" + format + ";0", Inv));
                sb.AppendLine($"| {key.Replace("|", "\\|", StringComparison.Ordinal)} | {string.Join(" | ", values)} | {string.Join(" | ", diffs)} |");
            }

            var totals = profiles.Select(p => perRequest(p, pick(p).Values.Sum()).ToString(format, Inv));
            var totalDiffs = others.Select(p => (perRequest(p, pick(p).Values.Sum()) - perRequest(b, pick(b).Values.Sum())).ToString("+" + format + ";-" + format + ";0", Inv));
            sb.AppendLine($"| **all** | {string.Join(" | ", totals)} | {string.Join(" | ", totalDiffs)} |");
        }

        static double Bytes(Profile p, double v) => v / Math.Max(1, p.AllocRequests);
        static double Micros(Profile p, double samples) => samples * p.IntervalMs * 1000 / Math.Max(1, p.CpuRequests) * p.CpuScale;

        if (profiles.Any(p => p.PerfSamples > 0))
        {
            sb.AppendLine();
            sb.AppendLine("### perf (on-CPU samples of the client process)");
            sb.AppendLine();
            sb.AppendLine("| cell | requests in the perf window | samples | CPU µs/req (samples × period ÷ requests) |");
            sb.AppendLine("|---|---:|---:|---:|");
            foreach (var p in profiles.Where(p => p.PerfSamples > 0))
            {
                sb.AppendLine(F($"| {p.Label} | {p.PerfRequests:0} | {p.PerfSamples} | {p.PerfMicros.Values.Sum() / p.PerfRequests:0.00} |"));
            }

            static double PerfMicros(Profile p, double micros) => micros / Math.Max(1, p.PerfRequests);
            Table("perf: CPU µs per request, by source (leaf first: kernel and runtime native code are sources)", p => p.PerfBySource, PerfMicros, "µs/req", "0.00", 40);
            Table("perf: CPU µs per request, by layer (native code and async plumbing charged to the managed code above them)", p => p.PerfByLayer, PerfMicros, "µs/req", "0.00", 40);
            Table($"perf: CPU µs per request, by MeshClient/Polly/factory method on the stack (inclusive, top {top})", p => p.PerfInclusive, PerfMicros, "µs/req", "0.00", top);
        }

        Table("Allocated bytes per request, by source", p => p.AllocBySource, Bytes, "B/req", "0", 40);
        Table("CPU µs per request, by source (running samples, scaled to the measured CPU)", p => p.CpuBySource, Micros, "µs/req", "0.00", 40);
        Table("Allocated bytes per request, by layer (the code that asked: async plumbing charged to its owner)", p => p.AllocByLayer, Bytes, "B/req", "0", 40);
        Table("CPU µs per request, by layer (the code running: async plumbing charged to its owner)", p => p.CpuByLayer, Micros, "µs/req", "0.00", 40);
        Table($"Allocated bytes per request, by type (top {top} by difference)", p => p.AllocByType, Bytes, "B/req", "0", top);
        Table($"Async state-machine boxes and tasks, bytes per request, by owner", p => p.AsyncByOwner, Bytes, "B/req", "0", top);
        Table($"CPU µs per request, by leaf method (exclusive, top {top} by difference)", p => p.CpuByLeaf, Micros, "µs/req", "0.00", top);
        Table($"CPU µs per request, by MeshClient/Polly method on the stack (inclusive, top {top})", p => p.CpuInclusiveMesh, Micros, "µs/req", "0.00", top);
        return sb.ToString();
    }

    private static string F(FormattableString s) => s.ToString(Inv);

    /// <summary>One trace, aggregated.</summary>
    private sealed class Profile
    {
        public required string Label { get; init; }

        public double CpuRequests { get; set; }

        public double AllocRequests { get; set; }

        /// <summary>Gets or sets the client CPU per request measured by the harness in an untraced cell, µs.</summary>
        public double? MeasuredCpuUs { get; set; }

        /// <summary>Gets measured CPU ÷ running thread time of the samples (1 when no measurement was given).</summary>
        public double CpuScale => MeasuredCpuUs is { } m && RunningSamples > 0 ? m / (RunningSamples * IntervalMs * 1000 / CpuRequests) : 1;

        public double DurationSeconds { get; set; }

        public double IntervalMs { get; set; }

        public long RunningSamples { get; set; }

        public long IdleSamples { get; set; }

        public long AllocTicks { get; set; }

        public double AllocBytes { get; set; }

        public string AllocMethod { get; set; } = "—";

        public Dictionary<string, double> AllocBySource { get; } = [];

        public Dictionary<string, double> AllocByType { get; } = [];

        public Dictionary<string, double> AsyncByOwner { get; } = [];

        public Dictionary<string, double> CpuBySource { get; } = [];

        public Dictionary<string, double> CpuByLayer { get; } = [];

        public double PerfRequests { get; set; }

        public long PerfSamples { get; set; }

        public Dictionary<string, double> PerfMicros { get; } = [];

        public Dictionary<string, double> PerfBySource { get; } = [];

        public Dictionary<string, double> PerfByLayer { get; } = [];

        public Dictionary<string, double> PerfInclusive { get; } = [];

        /// <summary>Reads the text of <c>perf script</c>: one block per sample (header, then frames leaf first).</summary>
        public void ReadPerf(string path, double requests, string? dump)
        {
            PerfRequests = requests;
            using var dumpWriter = dump is null ? null : new StreamWriter(dump);
            var frames = new List<string>();
            double period = 0;
            void Flush()
            {
                if (period > 0 && frames.Count > 0)
                {
                    PerfSamples++;
                    var micros = period / 1000;
                    Add(PerfMicros, "all", micros);
                    var source = NativeSource(frames[0]) ?? Classify(frames.Where(f => !f.StartsWith("native:", StringComparison.Ordinal)).ToList(), null);
                    Add(PerfBySource, source, micros);
                    var managed = frames.Where(f => !f.StartsWith("native:", StringComparison.Ordinal)).ToList();
                    Add(PerfByLayer, managed.Count > 0 ? Layer(managed) : "native only: " + (NativeSource(frames[0]) ?? "?"), micros);
                    foreach (var method in managed.Where(f => (f.StartsWith("MeshClient.", StringComparison.Ordinal) && !f.StartsWith("MeshClient.LoadTest", StringComparison.Ordinal))
                        || f.StartsWith("Polly.", StringComparison.Ordinal) || f.StartsWith("Microsoft.Extensions.Http.", StringComparison.Ordinal)).Select(Shorten).Distinct())
                    {
                        Add(PerfInclusive, method, micros);
                    }

                    dumpWriter?.WriteLine($"{source} :: {string.Join(" <- ", frames.Take(14))}");
                }

                frames.Clear();
                period = 0;
            }

            foreach (var line in File.ReadLines(path))
            {
                if (line.Length == 0)
                {
                    Flush();
                    continue;
                }

                if (!char.IsWhiteSpace(line[0]))
                {
                    Flush();
                    // "comm tid time: period event:"
                    var m = Regex.Match(line, @":\s+(\d+)\s+[\w-]+(:\w*)?:\s*$");
                    period = m.Success ? double.Parse(m.Groups[1].Value, Inv) : 0;
                    continue;
                }

                frames.Add(PerfFrame(line.Trim()));
            }

            Flush();
        }

        /// <summary>"addr sym (dso)" → "Namespace.Type.Method(" for JIT code (as TraceEvent names it), else "native:dso:sym".</summary>
        private static string PerfFrame(string line)
        {
            var space = line.IndexOf(' ');
            var rest = space > 0 ? line[(space + 1)..] : line;
            var open = rest.LastIndexOf(" (", StringComparison.Ordinal);
            var sym = open > 0 ? rest[..open] : rest;
            var dso = open > 0 ? rest[(open + 2)..].TrimEnd(')') : "?";
            if (dso.StartsWith("/tmp/perf-", StringComparison.Ordinal))
            {
                var colons = sym.IndexOf("::", StringComparison.Ordinal);
                if (colons > 0)
                {
                    var typeStart = sym.LastIndexOf("] ", colons, StringComparison.Ordinal);
                    var type = typeStart >= 0 ? sym[(typeStart + 2)..colons] : sym[..colons];
                    var method = sym[(colons + 2)..];
                    var paren = method.IndexOf('(');
                    return type + "." + (paren > 0 ? method[..paren] : method) + "(";
                }

                return sym;
            }

            var name = Path.GetFileName(dso);
            return $"native:{(name == "[kernel.kallsyms]" ? "kernel" : name)}:{Regex.Replace(sym, @"\+0x[0-9a-f]+$", string.Empty)}";
        }

        private static string? NativeSource(string leaf)
        {
            if (!leaf.StartsWith("native:", StringComparison.Ordinal))
            {
                return null;
            }

            if (leaf.StartsWith("native:kernel:", StringComparison.Ordinal))
            {
                return "kernel (syscalls: loopback TCP send/recv, epoll, futex, sched_yield, scheduling)";
            }

            if (leaf.Contains("libclrjit", StringComparison.Ordinal))
            {
                return "JIT (libclrjit)";
            }

            if (leaf.Contains("libcoreclr", StringComparison.Ordinal) || leaf.Contains("libclrgc", StringComparison.Ordinal))
            {
                return "runtime native (libcoreclr, no symbols: GC, allocation slow path, stubs, casts)";
            }

            return "native libraries (libc, System.Native: syscall wrappers)";
        }

        public Dictionary<string, double> AllocByLayer { get; } = [];

        public Dictionary<string, double> CpuByLeaf { get; } = [];

        public Dictionary<string, double> CpuInclusiveMesh { get; } = [];

        public void Read(string path, double requests, double? measuredCpuUs, string? dump)
        {
            var profile = this;
            var samplesBefore = RunningSamples + IdleSamples;
            var ticksBefore = AllocTicks;
            var etlx = TraceLog.CreateFromEventPipeDataFile(path, Path.ChangeExtension(path, $".{Environment.ProcessId}.etlx"));
            using var log = new TraceLog(etlx);
            var ticks = new HashSet<long>();
            double first = double.MaxValue, last = 0;
            using var dumpWriter = dump is null ? null : new StreamWriter(dump);
            // TRACE_CENSUS=1: list the events of each trace by provider/name/id (to check what a trace holds).
            var census = Environment.GetEnvironmentVariable("TRACE_CENSUS") is not null ? new Dictionary<string, int>() : null;
            foreach (var ev in log.Events)
            {
                if (census is not null)
                {
                    var key = $"{ev.ProviderName}/{ev.EventName}/{(int)ev.ID}";

                    census[key] = census.GetValueOrDefault(key) + 1;
                }

                if (ev.ProviderName == "Microsoft-DotNETCore-SampleProfiler")
                {
                    var ms = ev.TimeStampRelativeMSec;
                    first = Math.Min(first, ms);
                    last = Math.Max(last, ms);
                    ticks.Add((long)Math.Round(ms * 10)); // the sampler stamps all threads of one tick within ~0.1 ms
                    // The sample's Type (Managed/External) does not tell running from blocked (a P/Invoke'd send is
                    // External, a thread pool wait can be Managed): the stack does.
                    var frames = Frames(ev.CallStack());
                    if (IsIdle(frames))
                    {
                        profile.IdleSamples++;
                        dumpWriter?.WriteLine($"IDLE :: {string.Join(" <- ", frames.Take(6))}");
                        continue;
                    }

                    profile.RunningSamples++;
                    var source = Classify(frames, null);
                    Add(profile.CpuBySource, source, 1);
                    Add(profile.CpuByLayer, Layer(frames), 1);
                    Add(profile.CpuByLeaf, frames.Count > 0 ? Shorten(frames[0]) : "?", 1);
                    foreach (var method in frames.Where(f => f.StartsWith("MeshClient.", StringComparison.Ordinal) && !f.StartsWith("MeshClient.LoadTest", StringComparison.Ordinal) || f.StartsWith("Polly.", StringComparison.Ordinal)).Select(Shorten).Distinct())
                    {
                        Add(profile.CpuInclusiveMesh, method, 1);
                    }

                    dumpWriter?.WriteLine($"CPU {source} :: {string.Join(" <- ", frames.Take(12))}");
                }
                else if (ev is GCAllocationTickTraceData or { ProviderName: "Microsoft-Windows-DotNETRuntime", ID: (TraceEventID)303 })
                {
                    double amount;
                    string typeName;
                    if (ev is GCAllocationTickTraceData tick)
                    {
                        // AllocationTick: the object that crossed the ~100 KB mark, carrying the bytes since the last
                        // tick. Biased per type when allocations repeat in a fixed pattern (aliasing); kept as a fallback.
                        amount = tick.AllocationAmount64 > 0 ? tick.AllocationAmount64 : tick.AllocationAmount;
                        typeName = tick.TypeName ?? "?";
                        profile.AllocMethod = "AllocationTick";
                    }
                    else if (ParseAllocationSampled(ev.EventData()) is { } sampled)
                    {
                        // .NET 10 AllocationSampled (keyword 0x80000000000): a Poisson process over the allocated
                        // bytes, mean 100 KB between samples, so each sampled object of size s stands for
                        // s / (1 - exp(-s / 100 KB)) bytes: unbiased per type.
                        typeName = sampled.TypeName;
                        amount = sampled.Size / (1 - Math.Exp(-sampled.Size / 102400.0));
                        profile.AllocMethod = "AllocationSampled";
                    }
                    else
                    {
                        continue;
                    }

                    profile.AllocTicks++;
                    profile.AllocBytes += amount;
                    var frames = Frames(ev.CallStack());
                    var source = Classify(frames, typeName);
                    Add(profile.AllocBySource, source, amount);
                    Add(profile.AllocByLayer, Layer(frames), amount);
                    Add(profile.AllocByType, ShortType(typeName), amount);
                    if (AsyncOwner(typeName) is { } owner)
                    {
                        Add(profile.AsyncByOwner, owner, amount);
                    }

                    dumpWriter?.WriteLine($"ALLOC {source} {typeName} :: {string.Join(" <- ", frames.Take(12))}");
                }
            }

            if (census is not null)
            {
                foreach (var (key, n) in census.OrderByDescending(c => c.Value).Take(15))
                {
                    Console.Error.WriteLine($"  {n,8} {key}");
                }
            }

            if (RunningSamples + IdleSamples > samplesBefore)
            {
                DurationSeconds = (last - first) / 1000;
                IntervalMs = ticks.Count > 1 ? (last - first) / (ticks.Count - 1) : 1;
                CpuRequests = requests;
                MeasuredCpuUs = measuredCpuUs;
            }

            if (AllocTicks > ticksBefore)
            {
                AllocRequests = requests;
            }
        }

        /// <summary>Frames where a thread waits (blocked, not on a CPU): the first frame under the native leaf and GC polls.</summary>
        private static readonly string[] IdleFrames =
        [
            "System.Threading.LowLevelLifoSemaphore.WaitForSignal", "System.Threading.LowLevelLifoSemaphore.WaitNative", "System.Threading.Monitor.Wait",
            "System.Threading.WaitHandle.", "System.Threading.WaitSubsystem", "System.Threading.LowLevelMonitor", "System.Threading.Thread.Sleep",
            "Interop+Sys.WaitForSocketEvents", "Interop+Sys.LowLevelMonitor", "System.Threading.Thread.Join",
        ];

        private static bool IsIdle(List<string> frames)
        {
            var i = 0;
            while (i < frames.Count && (frames[i].StartsWith("?!", StringComparison.Ordinal) || frames[i].Contains("PollGC", StringComparison.Ordinal)))
            {
                i++;
            }

            if (i >= frames.Count)
            {
                return true; // a native-only thread: no managed frame at all
            }

            var first = frames[i];
            // The socket engine's thread is in epoll_wait when its leaf is native; otherwise it is dispatching events.
            return IdleFrames.Any(f => first.StartsWith(f, StringComparison.Ordinal))
                || (i > 0 && first.StartsWith("System.Net.Sockets.SocketAsyncEngine.EventLoop", StringComparison.Ordinal) && !frames[i - 1].Contains("PollGC", StringComparison.Ordinal));
        }

        /// <summary>AllocationSampled payload: UInt32 kind, UInt16 CLR instance, pointer type id, UTF-16 type name, pointer address, UInt64 size, UInt64 offset.</summary>
        private static (string TypeName, double Size)? ParseAllocationSampled(byte[] data)
        {
            var o = 4 + 2 + 8;
            var end = o;
            while (end + 1 < data.Length && (data[end] != 0 || data[end + 1] != 0))
            {
                end += 2;
            }

            if (end + 2 + 8 + 8 > data.Length)
            {
                return null;
            }

            var name = Encoding.Unicode.GetString(data, o, end - o);
            var size = BitConverter.ToUInt64(data, end + 2 + 8);
            return (name, size);
        }

        private static void Add(Dictionary<string, double> map, string key, double value) =>
            map[key] = map.GetValueOrDefault(key) + value;

        private static List<string> Frames(TraceCallStack? stack)
        {
            var frames = new List<string>();
            for (var s = stack; s is not null && frames.Count < 200; s = s.Caller)
            {
                var name = s.CodeAddress.FullMethodName;
                if (string.IsNullOrEmpty(name))
                {
                    name = "?!" + s.CodeAddress.ModuleName;
                }

                frames.Add(name);
            }

            return frames;
        }
    }

    // ---- classification -------------------------------------------------------------------------------------

    public const string Async = "async machinery: state-machine boxes, Task, continuations, ExecutionContext";
    public const string Pool = "thread pool: dispatch, spin-wait before sleeping, socket event dispatch";
    public const string Polly = "Polly pipeline, ResilienceContext (Polly.*, Microsoft.Extensions.*Resilience)";
    public const string Options = "HttpRequestMessage.Options dictionary (HttpRequestOptions)";
    public const string Activity = "Activity, DiagnosticsHandler, DiagnosticListener, propagators";
    public const string Factory = "IHttpClientFactory handler chain (Microsoft.Extensions.Http, logging scopes)";
    public const string Logging = "Microsoft.Extensions.Logging (ILogger calls)";
    public const string Timers = "timers and CancellationTokenSource (timeouts, CancelAfter)";
    public const string Pools = "SocketsHttpHandler: connection pools, HTTP/1.1 connection, parsing";
    public const string Sockets = "sockets (System.Net.Sockets, SocketAsyncEngine)";
    public const string HttpCore = "HttpClient / HttpRequestMessage / HttpResponseMessage / HttpContent / headers";
    public const string UriCat = "System.Uri (base + relative combine, endpoint rewrite)";
    public const string Metrics = "System.Diagnostics.Metrics (meters, instruments, tags)";
    public const string Harness = "load generator (MeshClient.LoadTest)";
    public const string Other = "other (unclassified BCL/runtime)";

    /// <summary>Frames that are plumbing used by everyone: skipped, so the cost lands on their caller.</summary>
    private static readonly string[] Transparent =
    [
        "System.Collections.", "System.String", "System.SpanHelpers", "System.Buffer", "System.Runtime.CompilerServices.Unsafe",
        "System.Runtime.CompilerServices.RuntimeHelpers", "System.Runtime.CompilerServices.CastHelpers", "System.Number",
        "System.Text.", "System.Array", "System.Linq.", "System.Runtime.InteropServices.", "System.Threading.Interlocked",
        "System.Threading.Volatile", "System.Math", "System.Object", "System.Span", "System.ReadOnlySpan", "System.Memory",
        "System.ReadOnlyMemory", "System.Random", "System.Diagnostics.Stopwatch", "System.Runtime.Intrinsics", "System.Globalization.",
        "System.Buffers.", "System.Runtime.CompilerServices.ConditionalWeakTable", "System.HashCode", "System.Marvin", "System.Int32",
        "System.Int64", "System.Double", "System.Enum", "System.Type", "System.RuntimeType", "System.Delegate", "System.MulticastDelegate",
        "System.Func", "System.Action", "System.Threading.Lock", "System.Threading.Monitor", "System.Threading.SpinWait",
        "System.Threading.SpinLock", "System.TimeSpan", "System.DateTime", "System.ThrowHelper", "System.Nullable", "System.ValueTuple",
        "System.Tuple", "System.Guid", "System.BitConverter", "System.Numerics.", "System.Char", "System.Boolean", "System.Environment",
        "System.Threading.Thread.", "System.Runtime.CompilerServices.DefaultInterpolatedStringHandler", "?!", "System.Diagnostics.Debugger",
    ];

    private static readonly string[] PoolFrames =
    [
        "System.Threading.PortableThreadPool", "System.Threading.ThreadPoolWorkQueue", "System.Threading.LowLevelLifoSemaphore", "System.Threading.ThreadPool.",
        "System.Threading.WorkerThread", "System.Net.Sockets.SocketAsyncEngine", "System.Threading.Semaphore.",
    ];

    /// <summary>Async plumbing: in the layer view, charged to the code that awaits.</summary>
    private static readonly string[] AsyncPlumbing =
    [
        "System.Runtime.CompilerServices.Async", "System.Threading.Tasks.", "System.Threading.ExecutionContext", "System.Runtime.CompilerServices.TaskAwaiter",
        "System.Runtime.CompilerServices.ValueTaskAwaiter", "System.Runtime.CompilerServices.Configured", "System.Runtime.CompilerServices.YieldAwaitable",
        "System.Threading.AsyncLocal", "System.Threading.ManualResetValueTaskSourceCore", "System.Threading.IThreadPoolWorkItem", "System.Threading.Tasks.Sources",
        "System.Threading.CancellationToken.", "System.Threading.CancellationTokenRegistration",
    ];

    /// <summary>
    /// The layer a sample or an allocation is charged to: walking from the leaf, the first frame of a known layer;
    /// plumbing (collections, strings, async builders, tasks) is skipped, so a state-machine box counts for the method
    /// that awaits. Timers, Uri and the thread pool are layers of their own.
    /// </summary>
    public static string Layer(IReadOnlyList<string> frames)
    {
        foreach (var frame in frames)
        {
            if (Transparent.Any(p => frame.StartsWith(p, StringComparison.Ordinal)) || AsyncPlumbing.Any(p => frame.StartsWith(p, StringComparison.Ordinal)))
            {
                continue;
            }

            if (frame.StartsWith("MeshClient.LoadTest", StringComparison.Ordinal))
            {
                return "load generator (MeshClient.LoadTest)";
            }

            if (frame.StartsWith("MeshClient.", StringComparison.Ordinal))
            {
                return "MeshClient: " + ShortType(OwnerType(MethodType(frame)));
            }

            if (frame.StartsWith("Polly.", StringComparison.Ordinal) || frame.StartsWith("Microsoft.Extensions.Http.Resilience", StringComparison.Ordinal) || frame.StartsWith("Microsoft.Extensions.Resilience", StringComparison.Ordinal))
            {
                return "Polly: " + PollyType(MethodType(frame));
            }

            if (frame.StartsWith("Microsoft.Extensions.Http.", StringComparison.Ordinal) || frame.StartsWith("Microsoft.Extensions.Logging", StringComparison.Ordinal))
            {
                return "IHttpClientFactory chain: " + ShortType(OwnerType(MethodType(frame)));
            }

            var source = Classify([frame], null);
            if (source.StartsWith(Other, StringComparison.Ordinal))
            {
                continue;
            }

            return source;
        }

        return Other;
    }

    private static string PollyType(string type)
    {
        var t = ShortType(OwnerType(type));
        var tick = t.IndexOf('`', StringComparison.Ordinal);
        return tick > 0 ? t[..tick] : t;
    }

    /// <summary>The source a CPU sample or an allocation is charged to.</summary>
    public static string Classify(IReadOnlyList<string> frames, string? allocatedType)
    {
        if (allocatedType is not null)
        {
            if (AsyncOwner(allocatedType) is not null)
            {
                return Async;
            }

            if (allocatedType.StartsWith("Polly.", StringComparison.Ordinal))
            {
                return Polly;
            }

            if (allocatedType.StartsWith("System.Diagnostics.Activity", StringComparison.Ordinal))
            {
                return Activity;
            }

            if (allocatedType.StartsWith("System.Threading.TimerQueueTimer", StringComparison.Ordinal) || allocatedType.StartsWith("System.Threading.CancellationTokenSource", StringComparison.Ordinal)
                || allocatedType.StartsWith("System.Threading.Timer", StringComparison.Ordinal))
            {
                return Timers;
            }

            if (allocatedType.StartsWith("MeshClient.", StringComparison.Ordinal))
            {
                return "MeshClient: " + ShortType(OwnerType(allocatedType));
            }
        }

        foreach (var frame in frames)
        {
            if (Transparent.Any(p => frame.StartsWith(p, StringComparison.Ordinal)))
            {
                continue;
            }

            if (frame.StartsWith("MeshClient.LoadTest", StringComparison.Ordinal))
            {
                return Harness;
            }

            if (frame.StartsWith("MeshClient.", StringComparison.Ordinal) || frame.StartsWith("Microsoft.Extensions.DependencyInjection.Mesh", StringComparison.Ordinal))
            {
                return "MeshClient: " + ShortType(OwnerType(MethodType(frame)));
            }

            if (frame.StartsWith("Polly.", StringComparison.Ordinal) || frame.StartsWith("Microsoft.Extensions.Http.Resilience", StringComparison.Ordinal) || frame.StartsWith("Microsoft.Extensions.Resilience", StringComparison.Ordinal))
            {
                return Polly;
            }

            if (frame.Contains("HttpRequestOptions", StringComparison.Ordinal) || frame.StartsWith("System.Net.Http.HttpRequestMessage.get_Options", StringComparison.Ordinal))
            {
                return Options;
            }

            if (frame.StartsWith("System.Diagnostics.Activity", StringComparison.Ordinal) || frame.StartsWith("System.Net.Http.DiagnosticsHandler", StringComparison.Ordinal)
                || frame.StartsWith("System.Diagnostics.DiagnosticListener", StringComparison.Ordinal) || frame.StartsWith("System.Diagnostics.DistributedContextPropagator", StringComparison.Ordinal)
                || frame.StartsWith("System.Diagnostics.W3C", StringComparison.Ordinal) || frame.StartsWith("System.Diagnostics.Legacy", StringComparison.Ordinal)
                || frame.StartsWith("System.Diagnostics.PassThrough", StringComparison.Ordinal))
            {
                return Activity;
            }

            if (frame.StartsWith("System.Diagnostics.Metrics", StringComparison.Ordinal) || frame.StartsWith("System.Net.Http.Metrics", StringComparison.Ordinal) || frame.StartsWith("System.Diagnostics.TagList", StringComparison.Ordinal))
            {
                return Metrics;
            }

            if (frame.StartsWith("Microsoft.Extensions.Http.", StringComparison.Ordinal) || frame.StartsWith("Microsoft.Extensions.Http.Logging", StringComparison.Ordinal))
            {
                return Factory;
            }

            if (frame.StartsWith("Microsoft.Extensions.Logging", StringComparison.Ordinal))
            {
                return Logging;
            }

            if (frame.StartsWith("System.Threading.TimerQueue", StringComparison.Ordinal) || frame.StartsWith("System.Threading.Timer", StringComparison.Ordinal)
                || frame.StartsWith("System.Threading.CancellationTokenSource", StringComparison.Ordinal) || frame.StartsWith("System.Threading.CancellationToken", StringComparison.Ordinal))
            {
                return Timers;
            }

            if (frame.StartsWith("System.Net.Http.HttpConnection", StringComparison.Ordinal) || frame.StartsWith("System.Net.Http.SocketsHttpHandler", StringComparison.Ordinal)
                || frame.StartsWith("System.Net.Http.Http1", StringComparison.Ordinal) || frame.StartsWith("System.Net.Http.HttpContentReadStream", StringComparison.Ordinal)
                || frame.StartsWith("System.Net.Http.ContentLength", StringComparison.Ordinal) || frame.StartsWith("System.Net.Http.ConnectHelper", StringComparison.Ordinal)
                || frame.StartsWith("System.Net.Http.RawConnectionStream", StringComparison.Ordinal) || frame.StartsWith("System.Net.Http.Headers.HttpHeaderParser", StringComparison.Ordinal)
                || frame.StartsWith("System.Net.Http.HttpConnectionResponseContent", StringComparison.Ordinal) || frame.StartsWith("System.Net.Http.ChunkedEncoding", StringComparison.Ordinal))
            {
                return Pools;
            }

            if (frame.StartsWith("System.Net.Sockets", StringComparison.Ordinal) || frame.StartsWith("System.Net.Internals", StringComparison.Ordinal) || frame.StartsWith("Interop+Sys", StringComparison.Ordinal))
            {
                return Sockets;
            }

            if (frame.StartsWith("System.Uri", StringComparison.Ordinal) || frame.StartsWith("System.IriHelper", StringComparison.Ordinal) || frame.StartsWith("System.UriHelper", StringComparison.Ordinal) || frame.StartsWith("System.DomainNameHelper", StringComparison.Ordinal))
            {
                return UriCat;
            }

            if (frame.StartsWith("System.Net.Http.", StringComparison.Ordinal) || frame.StartsWith("System.IO.", StringComparison.Ordinal) || frame.StartsWith("System.Net.Http.Headers", StringComparison.Ordinal))
            {
                return HttpCore;
            }

            if (PoolFrames.Any(p => frame.StartsWith(p, StringComparison.Ordinal)))
            {
                return Pool;
            }

            if (frame.StartsWith("System.Runtime.CompilerServices.Async", StringComparison.Ordinal) || frame.StartsWith("System.Threading.Tasks.", StringComparison.Ordinal)
                || frame.StartsWith("System.Threading.ExecutionContext", StringComparison.Ordinal) || frame.StartsWith("System.Threading.ThreadPool", StringComparison.Ordinal)
                || frame.StartsWith("System.Threading.PortableThreadPool", StringComparison.Ordinal) || frame.StartsWith("System.Runtime.CompilerServices.TaskAwaiter", StringComparison.Ordinal)
                || frame.StartsWith("System.Runtime.CompilerServices.ValueTaskAwaiter", StringComparison.Ordinal) || frame.StartsWith("System.Runtime.CompilerServices.ConfiguredValueTaskAwaitable", StringComparison.Ordinal)
                || frame.StartsWith("System.Runtime.CompilerServices.ConfiguredTaskAwaitable", StringComparison.Ordinal) || frame.StartsWith("System.Runtime.CompilerServices.YieldAwaitable", StringComparison.Ordinal)
                || frame.StartsWith("System.Threading.IThreadPoolWorkItem", StringComparison.Ordinal) || frame.StartsWith("System.Threading.LowLevel", StringComparison.Ordinal)
                || frame.StartsWith("System.Threading.SemaphoreSlim", StringComparison.Ordinal) || frame.StartsWith("System.Threading.WaitSubsystem", StringComparison.Ordinal)
                || frame.StartsWith("System.Threading.AsyncLocal", StringComparison.Ordinal) || frame.StartsWith("System.Threading.ManualResetValueTaskSourceCore", StringComparison.Ordinal)
                || frame.StartsWith("System.Threading.WorkerThread", StringComparison.Ordinal) || frame.StartsWith("System.Threading.ThreadPoolWorkQueue", StringComparison.Ordinal))
            {
                return Async;
            }

            return Other + " — " + ShortType(OwnerType(MethodType(frame)));
        }

        return Other;
    }

    /// <summary>For an async state-machine box, a Task or a TaskCompletionSource, the owner (the method's class); else null.</summary>
    public static string? AsyncOwner(string typeName)
    {
        if (typeName.StartsWith("System.Runtime.CompilerServices.AsyncTaskMethodBuilder", StringComparison.Ordinal)
            || typeName.StartsWith("System.Runtime.CompilerServices.AsyncValueTaskMethodBuilder", StringComparison.Ordinal)
            || typeName.StartsWith("System.Runtime.CompilerServices.PoolingAsync", StringComparison.Ordinal)
            || typeName.Contains("AsyncStateMachineBox", StringComparison.Ordinal))
        {
            // ...AsyncStateMachineBox`1[TResult, Owner+<Method>d__N]: keep the state machine.
            var m = Regex.Match(typeName, @"([A-Za-z0-9_.`]+)\+<([A-Za-z0-9_]+)>d__\d+");
            return m.Success ? $"box: {ShortType(m.Groups[1].Value)}.{m.Groups[2].Value}" : "box: " + ShortType(typeName);
        }

        if (typeName.StartsWith("System.Threading.Tasks.", StringComparison.Ordinal) || typeName.StartsWith("System.Threading.ExecutionContext", StringComparison.Ordinal)
            || typeName.StartsWith("System.Threading.AsyncLocal", StringComparison.Ordinal) || typeName.StartsWith("System.Threading.AsyncLocalValueMap", StringComparison.Ordinal))
        {
            return ShortType(typeName);
        }

        return null;
    }

    private static string MethodType(string frame)
    {
        var name = frame;
        var paren = name.IndexOf('(');
        if (paren > 0)
        {
            name = name[..paren];
        }

        var dot = name.LastIndexOf('.');
        return dot > 0 ? name[..dot] : name;
    }

    /// <summary>The class that owns a nested type: Owner+&lt;SendAsync&gt;d__5 → Owner; Owner+&lt;&gt;c → Owner.</summary>
    private static string OwnerType(string type)
    {
        var plus = type.IndexOf("+<", StringComparison.Ordinal);
        return plus > 0 ? type[..plus] : type;
    }

    /// <summary>A type name without namespaces in its generic arguments, capped in length.</summary>
    public static string ShortType(string type)
    {
        var s = Regex.Replace(type, @"(?<![A-Za-z0-9_])(?:[a-z][A-Za-z0-9_]*\.|[A-Z][A-Za-z0-9_]*\.)+(?=[A-Z<_][A-Za-z0-9_<>`]*)", m => m.Index == 0 ? m.Value : string.Empty);
        return s.Length > 140 ? s[..140] + "…" : s;
    }

    /// <summary>A method name, shortened: namespaces of arguments dropped, no signature.</summary>
    private static string Shorten(string frame)
    {
        var paren = frame.IndexOf('(');
        var name = paren > 0 ? frame[..paren] : frame;
        return ShortType(name);
    }
}
