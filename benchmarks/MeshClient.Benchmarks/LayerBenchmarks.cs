using System.Diagnostics;
using System.Net;
using BenchmarkDotNet.Attributes;
using MeshClient.Balancing;
using MeshClient.Handlers;
using MeshClient.Resilience;
using MeshClient.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshClient.Benchmarks;

/// <summary>
/// What each mesh layer costs per request, over an in-memory primary handler: the balancer alone; plus the
/// telemetry handler (no listener: no Activity); plus the resilience layers (Polly total timeout + retry with the
/// budget outside the balancer, Polly attempt timeout inside it) — the full mesh; and the full mesh with a trace
/// listener recording every span.
/// </summary>
[MemoryDiagnoser]
public class LayerBenchmarks
{
    private static readonly Uri Target = new("http://catalog/items/42");
    private ServiceProvider _services = null!;
    private HttpMessageInvoker _balancing = null!;
    private HttpMessageInvoker _telemetry = null!;
    private HttpMessageInvoker _full = null!;
    private HttpMessageInvoker _fullSuspended = null!;
    private ActivityListener? _listener;

    [GlobalSetup]
    public void Setup()
    {
        _services = BenchmarkHost.Build(s => s.AddMesh());

        var registry = _services.GetRequiredService<ServiceTableRegistry>();
        var instrumentation = _services.GetRequiredService<MeshInstrumentation>();
        var resilience = _services.GetRequiredService<ResilienceRegistry>();
        var time = TimeProvider.System;

        _balancing = Chain(new MeshBalancingHandler(registry));
        _telemetry = Chain(new MeshCallHandler(instrumentation, time), new MeshBalancingHandler(registry));
        _full = Chain(new MeshCallHandler(instrumentation, time), new MeshRetryHandler(resilience), new MeshBalancingHandler(registry), new MeshAttemptTimeoutHandler());
        _fullSuspended = Chain(new InMemoryHandler(suspend: true), new MeshCallHandler(instrumentation, time), new MeshRetryHandler(resilience), new MeshBalancingHandler(registry), new MeshAttemptTimeoutHandler());
        for (var i = 0; i < 100; i++)
        {
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

    [Benchmark(Baseline = true)]
    public Task Balancing() => Send(_balancing);

    [Benchmark]
    public Task BalancingTelemetry() => Send(_telemetry);

    [Benchmark]
    public Task Full() => Send(_full);

    [Benchmark]
    public Task FullTraced() => Send(_full);

    /// <summary>The full mesh over a primary handler that answers asynchronously, as a socket does: every async layer suspends.</summary>
    [Benchmark]
    public Task FullSuspended() => Send(_fullSuspended);

    private static async Task Send(HttpMessageInvoker invoker)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Target);
        (await invoker.SendAsync(request, CancellationToken.None)).Dispose();
    }

    private static HttpMessageInvoker Chain(params DelegatingHandler[] handlers) => Chain(new InMemoryHandler(), handlers);

    private static HttpMessageInvoker Chain(HttpMessageHandler primary, params DelegatingHandler[] handlers)
    {
        var inner = primary;
        for (var i = handlers.Length - 1; i >= 0; i--)
        {
            handlers[i].InnerHandler = inner;
            inner = handlers[i];
        }

        return new HttpMessageInvoker(inner);
    }
}
