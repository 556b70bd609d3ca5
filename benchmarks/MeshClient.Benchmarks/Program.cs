using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using MeshClient.Benchmarks;
using Perfolizer.Metrology;

// dotnet run -c Release --project benchmarks/MeshClient.Benchmarks -- --filter '*'
// dotnet run -c Release --project benchmarks/MeshClient.Benchmarks -- --bytes   (exact bytes per call, in seconds)
if (args is ["--bytes"])
{
    BytesPerRequest.Run();
    return;
}

// Allocations in bytes, not rounded to tenths of a KB: the cuts of issue 19 are compared byte for byte.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly)
    .Run(args, DefaultConfig.Instance.WithSummaryStyle(SummaryStyle.Default.WithSizeUnit(SizeUnit.B)));
