using MeshClient.ConsulServer;
using MeshClient.Model;
using MeshClient.Consul;
using MeshClient.Discovery;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Tests.Consul;

/// <summary>A mesh with <c>AddConsul()</c> pointed at a <see cref="ConsulTestServer"/>, with every log line collected.</summary>
internal sealed class ConsulTestHost : IAsyncDisposable
{
    private ConsulTestHost(MeshHost host, FakeLogCollector logs)
    {
        Host = host;
        Logs = logs;
    }

    public MeshHost Host { get; }

    public FakeLogCollector Logs { get; }

    public IServiceProvider Services => Host.Services;

    public ConsulCatalogCache Cache => Host.Services.GetRequiredService<ConsulCatalogCache>();

    public static ConsulTestHost Create(
        ConsulTestServer server,
        Action<Dictionary<string, string?>>? settings = null,
        Action<IServiceCollection>? configure = null)
    {
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Mesh:Consul:Address"] = server.Address.ToString(),
            ["Mesh:Consul:Wait"] = "00:00:30",
            ["Mesh:Consul:RetryBaseDelay"] = "00:00:00.050",
            ["Mesh:Consul:RetryMaxDelay"] = "00:00:00.400",
            ["Mesh:LoadBalancer"] = "RoundRobin",
        };
        settings?.Invoke(values);
        var logs = new FakeLogCollector();
        var host = MeshHost.Create(values, services =>
        {
            services.AddLogging(b =>
            {
                b.SetMinimumLevel(LogLevel.Trace);
                b.AddProvider(new FakeLoggerProvider(logs));
            });
            services.AddMesh().AddConsul();
            configure?.Invoke(services);
        });
        return new ConsulTestHost(host, logs);
    }

    public HttpClient CreateClient() => Host.CreateClient();

    /// <summary>What discovery currently says about the service: endpoint id → weight (through the public resolver).</summary>
    public async Task<IReadOnlyDictionary<string, int>> EndpointsAsync(string service)
    {
        var resolver = Services.GetRequiredService<ServiceEndpointResolver>();
        var source = await resolver.GetEndpointsAsync("http://" + service, CancellationToken.None);
        return source.Endpoints.ToDictionary(
            e => e.Features.Get<IMeshEndpointFeature>()?.Id ?? e.EndPoint.ToString()!,
            e => e.Features.Get<IMeshEndpointFeature>()?.Weight ?? 1);
    }

    /// <summary>Log records of one event id.</summary>
    public IReadOnlyList<FakeLogRecord> Events(int eventId) => [.. Logs.GetSnapshot().Where(r => r.Id.Id == eventId)];

    public async ValueTask DisposeAsync() => await Host.DisposeAsync();
}

/// <summary>Waits for a condition with bounded polling (never a fixed sleep standing in for "long enough").</summary>
internal static class Eventually
{
    public static async Task<TimeSpan> TrueAsync(Func<bool> condition, TimeSpan timeout, string because)
    {
        var started = TimeProvider.System.GetTimestamp();
        while (!condition())
        {
            if (TimeProvider.System.GetElapsedTime(started) > timeout)
            {
                Assert.Fail($"Not true within {timeout}: {because}");
            }

            await Task.Delay(10);
        }

        return TimeProvider.System.GetElapsedTime(started);
    }

    public static async Task<TimeSpan> TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, string because)
    {
        var started = TimeProvider.System.GetTimestamp();
        while (!await condition())
        {
            if (TimeProvider.System.GetElapsedTime(started) > timeout)
            {
                Assert.Fail($"Not true within {timeout}: {because}");
            }

            await Task.Delay(10);
        }

        return TimeProvider.System.GetElapsedTime(started);
    }
}

/// <summary>A <see cref="Randomizer"/> that always draws the same value.</summary>
internal sealed class FixedRandomizer(double value) : Randomizer
{
    public override double NextDouble() => value;

    public override long NextInt64(long maxExclusive) => (long)(value * maxExclusive);
}

internal static class Services
{
    /// <summary>A service instance on a test backend, passing (no service check; only the node's serfHealth).</summary>
    public static ServiceDefinition On(TestBackend backend, string name, string? id = null, int weight = 1, int warningWeight = 1, params CheckDefinition[] checks) => new()
    {
        Id = id ?? backend.Name,
        Name = name,
        Address = "127.0.0.1",
        Port = backend.Port,
        WeightPassing = weight,
        WeightWarning = warningWeight,
        Checks = [.. checks],
    };

    public static CheckDefinition Ttl(string status = "passing") => new() { Ttl = TimeSpan.FromHours(1), Status = status };
}
