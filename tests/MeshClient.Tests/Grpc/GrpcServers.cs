using System.Security.Cryptography.X509Certificates;
using MeshClient.Tests.Grpc.Proto;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Tests.Grpc;

/// <summary>A set of gRPC test servers disposed together, and a mesh host whose <c>echo</c> service lists them.</summary>
public sealed class GrpcServers : List<GrpcTestServer>, IAsyncDisposable
{
    public static async Task<GrpcServers> StartAsync(int count, Func<X509Certificate2>? certificate = null)
    {
        var servers = new GrpcServers();
        for (var i = 0; i < count; i++)
        {
            servers.Add(await GrpcTestServer.StartAsync("g" + i, certificate?.Invoke()));
        }

        return servers;
    }

    /// <summary>
    /// A mesh host with <c>Mesh:Services:echo</c> listing these servers (weight 1 each) and a gRPC client registered as a
    /// new user would: <c>AddGrpcClient&lt;Echo.EchoClient&gt;(o =&gt; o.Address = new Uri("http://echo"))</c>.
    /// </summary>
    public MeshHost CreateMesh(IDictionary<string, string?>? extra = null, Action<IServiceCollection>? configure = null, string address = "http://echo")
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < Count; i++)
        {
            settings[$"Mesh:Services:echo:Endpoints:{i}:Address"] = this[i].Address.ToString();
        }

        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        return MeshHost.Create(settings, services =>
        {
            services.AddGrpcClient<Echo.EchoClient>(o => o.Address = new Uri(address));
            configure?.Invoke(services);
        });
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var server in this)
        {
            await server.DisposeAsync();
        }
    }
}
