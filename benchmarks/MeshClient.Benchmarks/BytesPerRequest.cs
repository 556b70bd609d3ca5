using System.Reflection;
using BenchmarkDotNet.Attributes;

namespace MeshClient.Benchmarks;

/// <summary>
/// <c>--bytes</c>: the exact bytes allocated per call of every benchmark of <see cref="PipelineBenchmarks"/> and
/// <see cref="LayerBenchmarks"/> (all threads, <see cref="GC.GetTotalAllocatedBytes(bool)"/> over 20,000 calls after a
/// warm-up), in seconds rather than BenchmarkDotNet's minutes: what each cut of issue 19 was measured with between two
/// BenchmarkDotNet runs. Allocation does not depend on the machine's load.
/// </summary>
internal static class BytesPerRequest
{
    private const int Calls = 20_000;

    public static void Run()
    {
        foreach (var type in new[] { typeof(PipelineBenchmarks), typeof(LayerBenchmarks) })
        {
            var instance = Activator.CreateInstance(type)!;
            type.GetMethod("Setup")!.Invoke(instance, null);
            foreach (var method in type.GetMethods().Where(m => m.GetCustomAttribute<BenchmarkAttribute>() is not null && !m.Name.EndsWith("Traced", StringComparison.Ordinal)))
            {
                var call = method.CreateDelegate<Func<Task>>(instance);
                for (var i = 0; i < 2_000; i++)
                {
                    call().GetAwaiter().GetResult();
                }

                var before = GC.GetTotalAllocatedBytes(precise: true);
                for (var i = 0; i < Calls; i++)
                {
                    call().GetAwaiter().GetResult();
                }

                var bytes = (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)Calls;
                Console.WriteLine($"{type.Name}.{method.Name}: {bytes:F1} B");
            }

            type.GetMethod("Cleanup")!.Invoke(instance, null);
        }
    }
}
