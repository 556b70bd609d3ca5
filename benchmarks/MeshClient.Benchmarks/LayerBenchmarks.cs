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
    private ServiceProvider _hedgingServices = null!;
    private HttpMessageInvoker _fullSuspendedHedgeable = null!;
    private ActivityListener? _listener;

    [GlobalSetup]
    public void Setup()
    {
        _services = BenchmarkHost.Build(s => s.AddMesh());

        _resilience = _services.GetRequiredService<ResilienceRegistry>();
        _attempts = new MeshBalancingHandler(_services.GetRequiredService<ServiceTableRegistry>());

        _outer = Mesh(_services, _attempts, suspend: false);
        _full = new HttpMessageInvoker(Mesh(_services, _attempts, suspend: false));
        _fullSuspended = new HttpMessageInvoker(Mesh(_services, _attempts, suspend: true));

        // Hedging on with a delay no answer here reaches: what a hedgeable GET costs when no hedge is sent.
        _hedgingServices = BenchmarkHost.Build(s => s.AddMesh(o =>
        {
            o.Resilience.Hedging.Enabled = true;
            o.Resilience.Hedging.Delay = TimeSpan.FromSeconds(5);
        }));
        var hedgingAttempts = new MeshBalancingHandler(_hedgingServices.GetRequiredService<ServiceTableRegistry>());
        _fullSuspendedHedgeable = new HttpMessageInvoker(Mesh(_hedgingServices, hedgingAttempts, suspend: true));
        for (var i = 0; i < 100; i++)
        {
            Balancing().GetAwaiter().GetResult();
            Send(_full).GetAwaiter().GetResult();
            Send(_fullSuspended).GetAwaiter().GetResult();
            Send(_fullSuspendedHedgeable).GetAwaiter().GetResult();
        }
    }

    /// <summary>The mesh handler as the mesh's filter builds it: deadlines, routes and hedging on the path, as configured in <paramref name="services"/>.</summary>
    private static MeshCallHandler Mesh(ServiceProvider services, MeshBalancingHandler attempts, bool suspend)
    {
        var hedging = new MeshHedgingHandler(services.GetRequiredService<Hedging.HedgingRegistry>(), attempts);
        var retries = new MeshRetryHandler(services.GetRequiredService<ResilienceRegistry>(), hedging, services.GetRequiredService<Routing.MeshRouter>());
        var deadlines = new DeadlinePropagation(services.GetRequiredService<Configuration.MeshOptionsChangeNotifier>());
        return new MeshCallHandler(services.GetRequiredService<MeshInstrumentation>(), TimeProvider.System, retries, 0, deadlines) { InnerHandler = new InMemoryHandler(suspend) };
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
        _hedgingServices.DisposeAsync().AsTask().GetAwaiter().GetResult();
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

    /// <summary>
    /// As <see cref="FullSuspended"/>, for a service that hedges: the GET races its hedge timer (5 s, never reached),
    /// so this is what hedging costs a call that sends no hedge.
    /// </summary>
    [Benchmark]
    public Task FullSuspendedHedgeable() => Send(_fullSuspendedHedgeable);

    private static async Task Send(HttpMessageInvoker invoker)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Target);
        (await invoker.SendAsync(request, CancellationToken.None)).Dispose();
    }
}
