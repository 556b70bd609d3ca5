using System.Globalization;

namespace MeshClient.LoadTest;

/// <summary>The settings of one invocation, parsed from the command line (see <see cref="Usage"/>).</summary>
public sealed class LoadTestOptions
{
    public const string Usage = """
        MeshClient.LoadTest: MeshClient against a raw HttpClient, the stock .NET stack and sidecars, in one run.

          dotnet run -c Release --project benchmarks/MeshClient.LoadTest -- [options]

          --scenario LIST      all | comma list of healthy,slow,failing,refused,churn   (default all)
          --contenders LIST    comma list of raw,rr,factory1,factory,mesh,meshnolog,stock,yarp,nginx
                               (default raw,mesh,stock,yarp,nginx; with --rounds: raw,rr,factory,mesh,stock;
                               nginx is skipped when no nginx binary is installed). The floors, healthy only:
                               raw = bare HttpClient to backend #1; rr = bare HttpClients on one SocketsHttpHandler,
                               one per backend, taken in turn by the caller; factory1 = an IHttpClientFactory
                               client to backend #1, no mesh; factory = one IHttpClientFactory client per backend,
                               taken in turn by the caller, no mesh
          --shapes LIST        comma list of rate,sat   (default rate,sat)
          --duration T         measured time per cell, e.g. 20s, 500ms   (default 20s)
          --warmup T           warm-up per cell, same client, not counted   (default 3s)
          --rate N             open-model request rate, req/s   (default 1000)
          --max-in-flight N    open model: at most N requests in flight   (default 64)
          --concurrency N      closed-model (saturation) workers   (default 32)
          --slow-ms N          extra latency of the slow backend   (default 20)
          --churn-period T     churn: one instance leaves and one joins every T   (default 2s)
          --churn-lag T        churn: discovery learns of a departure T after the instance stopped   (default 250ms)
          --drain-cap T        requests still running T after the end are cancelled (count as failed)   (default 35s)
          --mesh-lb NAME       sets Mesh:LoadBalancer (default: not set, the library default)
          --runs N             repeat the whole matrix N times, contender order reversed on even runs (default 1)
          --rounds N           drift-robust comparison instead of the matrix: healthy only, N rounds of short
                               cells (--duration, --warmup each), the contender order rotated by one each round;
                               writes loadtest-rounds.md: each contender's ratios to raw and to rr as the median
                               of its rounds with the min–max range (e.g. --rounds 5 --duration 10s)
          --announce           print a line when each cell's measured phase starts (to attach dotnet-trace or
                               dotnet-counters to this process at the right time)
          --out DIR            where the report goes   (default benchmarks/results of the repository)
          --no-files           print the report, write nothing
        """;

    public static readonly IReadOnlyList<string> AllScenarios = [Scenario.Healthy, Scenario.Slow, Scenario.Failing, Scenario.Refused, Scenario.Churn];

    public static readonly IReadOnlyList<string> AllContenders = [Contender.Raw, Contender.RoundRobin, Contender.Factory1, Contender.Factory, Contender.Mesh, Contender.MeshNoLog, Contender.Stock, Contender.Yarp, Contender.Nginx];

    /// <summary>The contenders of a run that names none: all but the floors rr, factory1 and factory.</summary>
    public static readonly IReadOnlyList<string> DefaultContenders = [Contender.Raw, Contender.Mesh, Contender.Stock, Contender.Yarp, Contender.Nginx];

    /// <summary>The contenders of a <c>--rounds</c> run that names none.</summary>
    public static readonly IReadOnlyList<string> DefaultRoundsContenders = [Contender.Raw, Contender.RoundRobin, Contender.Factory, Contender.Mesh, Contender.Stock];

    /// <summary>The floors (no discovery, no resilience, no churn updates), which run in the healthy scenario only.</summary>
    public static readonly IReadOnlyList<string> HealthyOnlyContenders = [Contender.Raw, Contender.RoundRobin, Contender.Factory1, Contender.Factory];

    public static readonly IReadOnlyList<string> AllShapes = [Shape.Rate, Shape.Sat];

    /// <summary>Gets or sets the role of this process: the orchestrator (<c>run</c>), or a child (<c>backends</c>, <c>yarp</c>).</summary>
    public string Role { get; set; } = "run";

    public IReadOnlyList<string> Scenarios { get; set; } = AllScenarios;

    public IReadOnlyList<string> Contenders { get; set; } = DefaultContenders;

    public IReadOnlyList<string> Shapes { get; set; } = AllShapes;

    public TimeSpan Duration { get; set; } = TimeSpan.FromSeconds(20);

    public TimeSpan Warmup { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Gets or sets the traffic sent once per scenario to fresh backend/proxy processes (JIT), per target.</summary>
    public TimeSpan ProcessWarmup { get; set; } = TimeSpan.FromSeconds(2);

    public int Rate { get; set; } = 1000;

    public int MaxInFlight { get; set; } = 64;

    public int Concurrency { get; set; } = 32;

    public int Backends { get; set; } = 4;

    public TimeSpan SlowDelay { get; set; } = TimeSpan.FromMilliseconds(20);

    public TimeSpan ChurnPeriod { get; set; } = TimeSpan.FromSeconds(2);

    public TimeSpan ChurnLag { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Gets or sets how late a scheduled send may still be made (open model); later ones count as failed ("unsent").</summary>
    public TimeSpan SendGrace { get; set; } = TimeSpan.FromSeconds(2);

    public TimeSpan DrainCap { get; set; } = TimeSpan.FromSeconds(35);

    public string? MeshLoadBalancer { get; set; }

    public int Runs { get; set; } = 1;

    /// <summary>Gets or sets the rounds of the drift-robust comparison (0: the matrix instead).</summary>
    public int Rounds { get; set; }

    /// <summary>Gets or sets whether to print a line when each measured phase starts.</summary>
    public bool Announce { get; set; }

    public string? OutDirectory { get; set; }

    public bool WriteFiles { get; set; } = true;

    /// <summary>Gets or sets the arguments as given, for the report.</summary>
    public string CommandLine { get; set; } = string.Empty;

    /// <summary>Gets or sets the initial destinations of a <c>yarp</c> child.</summary>
    public IReadOnlyList<string> Destinations { get; set; } = [];

    public static LoadTestOptions Parse(IReadOnlyList<string> args)
    {
        var options = new LoadTestOptions { CommandLine = string.Join(' ', args) };
        var contendersGiven = false;
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            string Value()
            {
                if (i + 1 >= args.Count)
                {
                    throw new ArgumentException($"Option '{name}' needs a value.");
                }

                return args[++i];
            }

            switch (name)
            {
                case "--role": options.Role = Value(); break;
                case "--scenario":
                case "--scenarios": options.Scenarios = ParseList(Value(), AllScenarios, name); break;
                case "--contenders":
                case "--contender": options.Contenders = ParseList(Value(), AllContenders, name); contendersGiven = true; break;
                case "--shapes":
                case "--shape": options.Shapes = ParseList(Value(), AllShapes, name); break;
                case "--duration": options.Duration = ParseTime(Value(), name); break;
                case "--warmup": options.Warmup = ParseTime(Value(), name); break;
                case "--process-warmup": options.ProcessWarmup = ParseTime(Value(), name); break;
                case "--rate": options.Rate = ParseInt(Value(), name, 1); break;
                case "--max-in-flight": options.MaxInFlight = ParseInt(Value(), name, 1); break;
                case "--concurrency": options.Concurrency = ParseInt(Value(), name, 1); break;
                case "--backends": options.Backends = ParseInt(Value(), name, 2); break;
                case "--slow-ms": options.SlowDelay = TimeSpan.FromMilliseconds(ParseInt(Value(), name, 0)); break;
                case "--churn-period": options.ChurnPeriod = ParseTime(Value(), name); break;
                case "--churn-lag": options.ChurnLag = ParseTime(Value(), name); break;
                case "--send-grace": options.SendGrace = ParseTime(Value(), name); break;
                case "--drain-cap": options.DrainCap = ParseTime(Value(), name); break;
                case "--mesh-lb": options.MeshLoadBalancer = Value(); break;
                case "--runs": options.Runs = ParseInt(Value(), name, 1); break;
                case "--rounds": options.Rounds = ParseInt(Value(), name, 1); break;
                case "--announce": options.Announce = true; break;
                case "--out": options.OutDirectory = Value(); break;
                case "--no-files": options.WriteFiles = false; break;
                case "--destinations": options.Destinations = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries); break;
                default: throw new ArgumentException($"Unknown option '{name}'.");
            }
        }

        if (options.Rounds > 0 && !contendersGiven)
        {
            options.Contenders = DefaultRoundsContenders;
        }

        if (options.ChurnPeriod <= options.ChurnLag)
        {
            throw new ArgumentException("--churn-period must be longer than --churn-lag.");
        }

        return options;
    }

    /// <summary>Parses <c>20s</c>, <c>500ms</c>, <c>2m</c> or a bare number of seconds.</summary>
    public static TimeSpan ParseTime(string text, string name = "time")
    {
        var t = text.Trim().ToLowerInvariant();
        (string Number, double Scale) split = t.EndsWith("ms", StringComparison.Ordinal) ? (t[..^2], 0.001)
            : t.EndsWith('s') ? (t[..^1], 1)
            : t.EndsWith('m') ? (t[..^1], 60)
            : (t, 1);
        if (!double.TryParse(split.Number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value < 0)
        {
            throw new ArgumentException($"Option '{name}': '{text}' is not a time (e.g. 20s, 500ms).");
        }

        return TimeSpan.FromSeconds(value * split.Scale);
    }

    private static int ParseInt(string text, string name, int min)
    {
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < min)
        {
            throw new ArgumentException($"Option '{name}': '{text}' is not an integer >= {min}.");
        }

        return value;
    }

    private static string[] ParseList(string text, IReadOnlyList<string> allowed, string name)
    {
        if (text.Equals("all", StringComparison.OrdinalIgnoreCase))
        {
            return [.. allowed];
        }

        var items = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => s.ToLowerInvariant())
            .Distinct()
            .ToArray();
        var unknown = items.Where(s => !allowed.Contains(s)).ToArray();
        if (unknown.Length > 0 || items.Length == 0)
        {
            throw new ArgumentException($"Option '{name}': unknown value(s) '{string.Join(",", unknown)}'; allowed: {string.Join(",", allowed)}.");
        }

        // Keep the canonical order, whatever order was typed.
        return [.. allowed.Where(items.Contains)];
    }
}

public static class Scenario
{
    public const string Healthy = "healthy";
    public const string Slow = "slow";
    public const string Failing = "failing";
    public const string Refused = "refused";
    public const string Churn = "churn";
}

public static class Contender
{
    public const string Raw = "raw";
    public const string RoundRobin = "rr";
    public const string Factory1 = "factory1";
    public const string Factory = "factory";
    public const string Mesh = "mesh";

    /// <summary>The mesh with the factory's logging handlers removed (<c>RemoveAllLoggers()</c>): the mesh without the factory's floor.</summary>
    public const string MeshNoLog = "meshnolog";
    public const string Stock = "stock";
    public const string Yarp = "yarp";
    public const string Nginx = "nginx";
}

public static class Shape
{
    public const string Rate = "rate";
    public const string Sat = "sat";
}
