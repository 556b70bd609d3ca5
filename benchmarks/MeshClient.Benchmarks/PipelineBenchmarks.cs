using System.Diagnostics;
using System.Net;
using BenchmarkDotNet.Attributes;
using MeshClient.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshClient.Benchmarks;

/// <summary>
/// One GET through a real IHttpClientFactory client whose primary handler answers from memory, so what is measured
/// is the pipeline: no handler at all (the floor), the stock .NET stack (AddServiceDiscovery +
/// AddStandardResilienceHandler), and MeshClient with its defaults, with and without a trace listener. The
/// <c>…Suspended</c> pair answers asynchronously, as a socket does, so that every async layer above the primary
/// handler allocates its state machine as it does in real traffic (the difference between the two is exact, whatever
/// the machine's load).
/// </summary>
[MemoryDiagnoser]
public class PipelineBenchmarks
{
    private ServiceProvider _raw = null!;
    private ServiceProvider _stock = null!;
    private ServiceProvider _mesh = null!;
    private HttpClient _rawClient = null!;
    private HttpClient _stockClient = null!;
    private HttpClient _meshClient = null!;
    private ServiceProvider _rawSuspended = null!;
    private ServiceProvider _meshSuspended = null!;
    private HttpClient _rawSuspendedClient = null!;
    private HttpClient _meshSuspendedClient = null!;
    private ActivityListener? _listener;

    [GlobalSetup]
    public void Setup()
    {
        _raw = BenchmarkHost.Build(s => s.AddHttpClient("c").ConfigurePrimaryHttpMessageHandler(() => new InMemoryHandler()));
        _stock = BenchmarkHost.Build(s =>
        {
            s.AddServiceDiscovery();
            s.AddHttpClient("c").ConfigurePrimaryHttpMessageHandler(() => new InMemoryHandler()).AddServiceDiscovery().AddStandardResilienceHandler();
        });
        _mesh = BenchmarkHost.Build(s =>
        {
            s.AddMesh();
            s.AddHttpClient("c").ConfigurePrimaryHttpMessageHandler(() => new InMemoryHandler());
        });
        _rawSuspended = BenchmarkHost.Build(s => s.AddHttpClient("c").ConfigurePrimaryHttpMessageHandler(() => new InMemoryHandler(suspend: true)));
        _meshSuspended = BenchmarkHost.Build(s =>
        {
            s.AddMesh();
            s.AddHttpClient("c").ConfigurePrimaryHttpMessageHandler(() => new InMemoryHandler(suspend: true));
        });
        _rawSuspendedClient = _rawSuspended.GetRequiredService<IHttpClientFactory>().CreateClient("c");
        _meshSuspendedClient = _meshSuspended.GetRequiredService<IHttpClientFactory>().CreateClient("c");
        _rawClient = _raw.GetRequiredService<IHttpClientFactory>().CreateClient("c");
        _stockClient = _stock.GetRequiredService<IHttpClientFactory>().CreateClient("c");
        _meshClient = _mesh.GetRequiredService<IHttpClientFactory>().CreateClient("c");
        for (var i = 0; i < 100; i++)
        {
            _meshClient.GetAsync("http://catalog/items/42").GetAwaiter().GetResult().Dispose();
            _stockClient.GetAsync("http://catalog/items/42").GetAwaiter().GetResult().Dispose();
            _meshSuspendedClient.GetAsync("http://catalog/items/42").GetAwaiter().GetResult().Dispose();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _listener?.Dispose();
        _raw.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _stock.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _mesh.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _rawSuspended.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _meshSuspended.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true)]
    public async Task Raw() => (await _rawClient.GetAsync("http://10.0.0.1:8080/items/42")).Dispose();

    [Benchmark]
    public async Task Stock() => (await _stockClient.GetAsync("http://catalog/items/42")).Dispose();

    [Benchmark]
    public async Task Mesh() => (await _meshClient.GetAsync("http://catalog/items/42")).Dispose();

    [Benchmark]
    public async Task RawSuspended() => (await _rawSuspendedClient.GetAsync("http://10.0.0.1:8080/items/42")).Dispose();

    [Benchmark]
    public async Task MeshSuspended() => (await _meshSuspendedClient.GetAsync("http://catalog/items/42")).Dispose();

    [GlobalSetup(Target = nameof(MeshTraced))]
    public void SetupTraced()
    {
        Setup();
        _listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == MeshClient.Telemetry.MeshTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    [Benchmark]
    public async Task MeshTraced() => (await _meshClient.GetAsync("http://catalog/items/42")).Dispose();
}
