using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using MeshClient.Benchmarks;
using Perfolizer.Metrology;

// dotnet run -c Release --project benchmarks/MeshClient.Benchmarks -- --filter '*'
// dotnet run -c Release --project benchmarks/MeshClient.Benchmarks -- --bytes   (exact bytes per call, in seconds)
// dotnet run -c Release --project benchmarks/MeshClient.Benchmarks -- --scale [--services 1000] [--endpoints 20] [--gcdump DIR]
// dotnet run -c Release --project benchmarks/MeshClient.Benchmarks -- --bind 1000
if (args is ["--bytes"])
{
    BytesPerRequest.Run();
    return 0;
}

if (args.Length > 1 && args[0] == "--bind")
{
    BindProbe.Run(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture));
    return 0;
}

if (args.Length > 0 && args[0] == "--scale")
{
    return await ScaleReport.RunAsync(args).ConfigureAwait(false);
}

// Allocations in bytes, not rounded to tenths of a KB: the cuts of issue 19 are compared byte for byte.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly)
    .Run(args, DefaultConfig.Instance.WithSummaryStyle(SummaryStyle.Default.WithSizeUnit(SizeUnit.B)));
return 0;
