using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Perfolizer.Metrology;

// dotnet run -c Release --project benchmarks/MeshClient.Benchmarks -- --filter '*'
// Allocations in bytes, not rounded to tenths of a KB: the cuts of issue 19 are compared byte for byte.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly)
    .Run(args, DefaultConfig.Instance.WithSummaryStyle(SummaryStyle.Default.WithSizeUnit(SizeUnit.B)));
