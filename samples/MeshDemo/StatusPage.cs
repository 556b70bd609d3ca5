using System.Globalization;
using System.Net;
using MeshClient.Balancing;
using MeshClient.Status;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshDemo;

/// <summary>
/// With --status-port: MeshClient.AspNetCore's status page (<c>MapMeshStatus("/mesh")</c>) over the demo's mesh, on
/// 127.0.0.1 only (the page shows internal addresses), for as long as the demo runs.
/// </summary>
internal sealed class StatusPage : IAsyncDisposable
{
    private readonly WebApplication _app;

    private StatusPage(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    /// <summary>Gets the page's address, <c>http://127.0.0.1:{port}/mesh</c>.</summary>
    public Uri Address { get; }

    /// <summary>Serves the status of <paramref name="status"/> (the caller's mesh) on 127.0.0.1:<paramref name="port"/>.</summary>
    public static async Task<StatusPage> StartAsync(int port, IMeshStatus status, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(IPAddress.Loopback, port);
        });

        // The page reads the caller's mesh: its IMeshStatus, not a second mesh of its own.
        builder.Services.AddSingleton(status);
        var app = builder.Build();
        app.MapMeshStatus("/mesh");
        await app.StartAsync(cancellationToken);
        return new StatusPage(app, new Uri(string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{port}/mesh")));
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}
