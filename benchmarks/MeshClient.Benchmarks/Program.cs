using BenchmarkDotNet.Running;

// dotnet run -c Release --project benchmarks/MeshClient.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
