using System.Globalization;
using MeshClient.LoadTest;

namespace MeshClient.GrpcBenchmark;

/// <summary>
/// The gRPC balancing benchmark (issue 14, item 6): grpc-dotnet's own round_robin against the mesh, side by side in one
/// run, over four Grpc.AspNetCore servers in a child process (<c>--role servers</c>). See README.md.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        if (args.Length >= 2 && args[0] == "--role" && args[1] == "servers")
        {
            return await ServersRole.RunAsync(args.Length >= 3 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 4);
        }

        BenchmarkOptions options;
        try
        {
            options = BenchmarkOptions.Parse(args);
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync(e.Message);
            await Console.Error.WriteLineAsync(BenchmarkOptions.Usage);
            return 2;
        }

        if (options.Help)
        {
            Console.WriteLine(BenchmarkOptions.Usage);
            return 0;
        }

        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };
        try
        {
            var results = await Runner.RunAsync(options, Console.Out, cts.Token);
            var report = Report.Write(options, results, string.Join(' ', args));
            var directory = Path.GetDirectoryName(Path.GetFullPath(options.Out));
            if (directory is not null)
            {
                Directory.CreateDirectory(directory);
            }

            await File.WriteAllTextAsync(options.Out, report);
            Console.WriteLine();
            Console.WriteLine(report);
            Console.WriteLine($"Written to {Path.GetFullPath(options.Out)}");
            return 0;
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync("Interrupted; nothing written.");
            return 130;
        }
        finally
        {
            ChildProcess.KillAll();
        }
    }
}

internal sealed record BenchmarkOptions
{
    public const string Usage = """
        Usage: dotnet run -c Release --project benchmarks/MeshClient.GrpcBenchmark -- [options]
          --rounds N          rounds, each running every contender once per scenario, order rotated (default 3)
          --duration 10s      measured time of a cell (default 10s)
          --warmup 2s         unmeasured traffic before each cell, on the cell's fresh client (default 2s)
          --concurrency 32    closed-loop callers (default 32)
          --scenarios a,b     slow, unavailable (default both)
          --contenders a,b    stock, stock-retry, mesh (default all three)
          --out PATH          the report (default benchmarks/results/grpc-balancing.md)
        """;

    public bool Help { get; init; }

    public int Rounds { get; init; } = 3;

    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(2);

    public int Concurrency { get; init; } = 32;

    public IReadOnlyList<string> Scenarios { get; init; } = ["slow", "unavailable"];

    public IReadOnlyList<string> ContenderNames { get; init; } = Contenders.All;

    public string Out { get; init; } = "benchmarks/results/grpc-balancing.md";

    public static BenchmarkOptions Parse(string[] args)
    {
        var options = new BenchmarkOptions();
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            options = args[i] switch
            {
                "--help" or "-h" => options with { Help = true },
                "--rounds" => options with { Rounds = Math.Max(1, int.Parse(Next(), CultureInfo.InvariantCulture)) },
                "--duration" => options with { Duration = Time(Next()) },
                "--warmup" => options with { Warmup = Time(Next()) },
                "--concurrency" => options with { Concurrency = Math.Max(1, int.Parse(Next(), CultureInfo.InvariantCulture)) },
                "--scenarios" => options with { Scenarios = List(Next(), ["slow", "unavailable"]) },
                "--contenders" => options with { ContenderNames = List(Next(), Contenders.All) },
                "--out" => options with { Out = Next() },
                _ => throw new ArgumentException($"Unknown option '{args[i]}'."),
            };
        }

        return options;
    }

    private static TimeSpan Time(string text) =>
        text.EndsWith("ms", StringComparison.Ordinal) ? TimeSpan.FromMilliseconds(double.Parse(text[..^2], CultureInfo.InvariantCulture))
        : TimeSpan.FromSeconds(double.Parse(text.TrimEnd('s'), CultureInfo.InvariantCulture));

    private static string[] List(string text, string[] known)
    {
        var items = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var item in items)
        {
            if (!known.Contains(item))
            {
                throw new ArgumentException($"Unknown value '{item}' (known: {string.Join(", ", known)}).");
            }
        }

        return items;
    }
}
