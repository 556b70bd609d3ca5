using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using MeshClient.Balancing;
using MeshClient.Handlers;
using MeshClient.Model;
using MeshClient.Resilience;
using MeshClient.Telemetry;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Benchmarks;

/// <summary>
/// What the mesh's steps cost per request, over an in-memory primary handler: one attempt through the balancing step
/// alone (resolve, pick, rewrite, the attempt timeout armed, complete; with its call context and timeouts); the whole
/// mesh handler (+ the call's span and metrics, no listener: no Activity; + the retry loop and the total timeout); the
/// whole handler with a trace listener recording every span; and the whole handler over a primary that answers
/// asynchronously, as a socket does (every async step suspends). Since issue 19 the mesh is one handler whose steps
/// are not handlers of their own, so "balancing alone" drives the step directly.
/// </summary>
[MemoryDiagnoser]
public class LayerBenchmarks
{
    private static readonly Uri Target = new("http://catalog/items/42");
    private ServiceProvider _services = null!;
    private ResilienceRegistry _resilience = null!;
    private MeshBalancingHandler _attempts = null!;
    private MeshCallHandler _outer = null!;
    private HttpMessageInvoker _full = null!;
    private HttpMessageInvoker _fullSuspended = null!;
    private ActivityListener? _listener;

    [GlobalSetup]
    public void Setup()
    {
        _services = BenchmarkHost.Build(s => s.AddMesh());

        var registry = _services.GetRequiredService<ServiceTableRegistry>();
        var instrumentation = _services.GetRequiredService<MeshInstrumentation>();
        _resilience = _services.GetRequiredService<ResilienceRegistry>();
        var time = TimeProvider.System;

        _attempts = new MeshBalancingHandler(registry);

        // As the mesh's filter builds it: deadlines, routes and hedging are on the path, none of them configured.
        var hedging = new MeshHedgingHandler(_services.GetRequiredService<Hedging.HedgingRegistry>(), _attempts);
        var retries = new MeshRetryHandler(_resilience, hedging, _services.GetRequiredService<Routing.MeshRouter>());
        var deadlines = new DeadlinePropagation(_services.GetRequiredService<Configuration.MeshOptionsChangeNotifier>());
        MeshCallHandler Mesh(bool suspend) => new(instrumentation, time, retries, 0, deadlines) { InnerHandler = new InMemoryHandler(suspend) };
        _outer = Mesh(suspend: false);
        _full = new HttpMessageInvoker(Mesh(suspend: false));
        _fullSuspended = new HttpMessageInvoker(Mesh(suspend: true));
        for (var i = 0; i < 100; i++)
        {
            Balancing().GetAwaiter().GetResult();
            Send(_full).GetAwaiter().GetResult();
            Send(_fullSuspended).GetAwaiter().GetResult();
        }
    }

    [GlobalSetup(Target = nameof(FullTraced))]
    public void SetupTraced()
    {
        Setup();
        _listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == MeshTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _listener?.Dispose();
        _services.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    /// <summary>One attempt through the balancing step, with the call context and timeouts it needs.</summary>
    [Benchmark(Baseline = true)]
    public async Task Balancing()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Target);
        var call = new MeshRequestContext("catalog");
        var timeout = CallTimeout.Start(TimeProvider.System, _resilience.Get("catalog").Settings, call, CancellationToken.None);
        try
        {
            (await _attempts.SendAsync(_outer, call, timeout, request)).Dispose();
        }
        finally
        {
            timeout.Return();
        }
    }

    [Benchmark]
    public Task Full() => Send(_full);

    [Benchmark]
    public Task FullTraced() => Send(_full);

    /// <summary>The whole mesh over a primary handler that answers asynchronously, as a socket does: every async step suspends.</summary>
    [Benchmark]
    public Task FullSuspended() => Send(_fullSuspended);

    private static async Task Send(HttpMessageInvoker invoker)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Target);
        (await invoker.SendAsync(request, CancellationToken.None)).Dispose();
    }
}
