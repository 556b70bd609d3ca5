using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshClient.AspNetCore.Tests.Deadlines;

/// <summary>
/// One service of the A → B → C tests: a real Kestrel app on 127.0.0.1 (port chosen by the OS) with
/// <c>app.UseMeshDeadlines()</c> first in its pipeline, and the mesh (<c>AddMesh()</c>) over the services it calls.
/// </summary>
internal sealed class ServiceApp : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ServiceApp(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>Starts an app that calls <paramref name="calls"/> through the mesh (service name → its app).</summary>
    /// <param name="http2">HTTP/2 only (h2c, as gRPC over http:// needs), else HTTP/1.1.</param>
    public static async Task<ServiceApp> StartAsync(IReadOnlyDictionary<string, ServiceApp> calls, Action<WebApplicationBuilder>? configure, Action<WebApplication> map, bool http2 = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0, listen => listen.Protocols = http2 ? HttpProtocols.Http2 : HttpProtocols.Http1));
        builder.Configuration.AddInMemoryCollection(MeshSettings(calls));
        builder.Services.AddMesh();
        configure?.Invoke(builder);
        var app = builder.Build();
        app.UseMeshDeadlines();
        map(app);
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return new ServiceApp(app, address);
    }

    /// <summary>The mesh's configuration for calls to <paramref name="calls"/>: one endpoint each, no retry.</summary>
    public static Dictionary<string, string?> MeshSettings(IReadOnlyDictionary<string, ServiceApp> calls)
    {
        var settings = new Dictionary<string, string?> { ["Mesh:Resilience:MaxRetries"] = "0" };
        foreach (var (name, app) in calls)
        {
            settings[$"Mesh:Services:{name}:Endpoints:0:Address"] = app.Address.ToString();
        }

        return settings;
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}
