using BenchmarkDotNet.Running;
using MeshClient.Benchmarks;

// dotnet run -c Release --project benchmarks/MeshClient.Benchmarks -- --filter '*'
// dotnet run -c Release --project benchmarks/MeshClient.Benchmarks -- --scale [--services 1000] [--endpoints 20] [--gcdump DIR]
// dotnet run -c Release --project benchmarks/MeshClient.Benchmarks -- --bind 1000
if (args.Length > 1 && args[0] == "--bind")
{
    BindProbe.Run(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture));
    return 0;
}

if (args.Length > 0 && args[0] == "--scale")
{
    return await ScaleReport.RunAsync(args).ConfigureAwait(false);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
