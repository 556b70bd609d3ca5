using MeshClient.Consul;
using MeshClient.ConsulServer;
using MeshClient.Discovery;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Tests.Consul;

/// <summary>A mesh with <c>AddConsul()</c> pointed at a <see cref="ConsulTestServer"/>, with every log line collected.</summary>
internal sealed class ConsulTestHost : ProviderTestHost
{
    private ConsulTestHost(MeshHost host, FakeLogCollector logs)
        : base(host, logs)
    {
    }

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
        var host = CreateHost(values, logs, services =>
        {
            services.AddMesh().AddConsul();
            configure?.Invoke(services);
        });
        return new ConsulTestHost(host, logs);
    }

    /// <summary>What discovery currently says about the service: endpoint id → weight (through the public resolver).</summary>
    public Task<IReadOnlyDictionary<string, int>> EndpointsAsync(string service) =>
        EndpointsAsync(service, e => e.Features.Get<IMeshEndpointFeature>()?.Weight ?? 1);
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
