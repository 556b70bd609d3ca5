using System.Globalization;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Balancer;
using Grpc.Net.Client.Configuration;
using MeshClient.GrpcBenchmark.Proto;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.GrpcBenchmark;

/// <summary>One fresh client of a contender for one cell; disposing it closes its connections.</summary>
internal sealed class ContenderClient(Echo.EchoClient client, IAsyncDisposable owner) : IAsyncDisposable
{
    public Echo.EchoClient Client { get; } = client;

    public ValueTask DisposeAsync() => owner.DisposeAsync();
}

/// <summary>
/// The contenders:
/// <list type="bullet">
/// <item><c>stock</c>: grpc-dotnet's own client-side balancing, the anchor — a <see cref="GrpcChannel"/> on
/// <c>static:///echo</c> with a <see cref="StaticResolverFactory"/> of the servers' addresses and
/// <c>LoadBalancingConfigs = { new RoundRobinConfig() }</c>, h2c (insecure credentials), no retry policy.</item>
/// <item><c>stock-retry</c>: the same channel with grpc-dotnet's <see cref="RetryPolicy"/> for UNAVAILABLE
/// (5 attempts, backoff 10 ms ×1.5 up to 100 ms, gRPC's randomized backoff).</item>
/// <item><c>mesh</c>: <c>AddMesh()</c> + <c>AddGrpcClient&lt;Echo.EchoClient&gt;(o =&gt; o.Address = new Uri("http://echo"))</c>
/// with <c>Mesh:Services:echo:Endpoints</c> listing the servers; every mesh setting at its default (PeakEwma).</item>
/// </list>
/// </summary>
internal static class Contenders
{
    public static readonly string[] All = ["stock", "stock-retry", "mesh"];

    public static ContenderClient Create(string name, IReadOnlyList<int> ports) => name switch
    {
        "stock" => Stock(ports, retry: false),
        "stock-retry" => Stock(ports, retry: true),
        "mesh" => Mesh(ports),
        _ => throw new ArgumentException($"Unknown contender '{name}'.", nameof(name)),
    };

    private static ContenderClient Stock(IReadOnlyList<int> ports, bool retry)
    {
        var services = new ServiceCollection();
        services.AddSingleton<ResolverFactory>(new StaticResolverFactory(_ => ports.Select(p => new BalancerAddress("127.0.0.1", p)).ToArray()));
        var provider = services.BuildServiceProvider();
        var config = new ServiceConfig { LoadBalancingConfigs = { new RoundRobinConfig() } };
        if (retry)
        {
            config.MethodConfigs.Add(new MethodConfig
            {
                Names = { MethodName.Default },
                RetryPolicy = new RetryPolicy
                {
                    MaxAttempts = 5,
                    InitialBackoff = TimeSpan.FromMilliseconds(10),
                    MaxBackoff = TimeSpan.FromMilliseconds(100),
                    BackoffMultiplier = 1.5,
                    RetryableStatusCodes = { StatusCode.Unavailable },
                },
            });
        }

        var channel = GrpcChannel.ForAddress("static:///echo", new GrpcChannelOptions
        {
            Credentials = ChannelCredentials.Insecure,
            ServiceConfig = config,
            ServiceProvider = provider,
        });
        return new ContenderClient(new Echo.EchoClient(channel), new Owner(channel, provider));
    }

    private static ContenderClient Mesh(IReadOnlyList<int> ports)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < ports.Count; i++)
        {
            settings[$"Mesh:Services:echo:Endpoints:{i}:Address"] = string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{ports[i]}");
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddLogging();
        services.AddMesh();
        services.AddGrpcClient<Echo.EchoClient>(o => o.Address = new Uri("http://echo"));
        var provider = services.BuildServiceProvider();
        return new ContenderClient(provider.GetRequiredService<Echo.EchoClient>(), new Owner(null, provider));
    }

    private sealed class Owner(GrpcChannel? channel, ServiceProvider provider) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            channel?.Dispose();
            await provider.DisposeAsync();
        }
    }
}
