using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshDemo;

/// <summary>What one backend instance is like.</summary>
/// <param name="Name">The instance name, sent back in the <c>X-Backend</c> header.</param>
/// <param name="Weight">The weight the caller gives it in the mesh configuration.</param>
/// <param name="Role">A few words for the table.</param>
/// <param name="Latency">The base service time.</param>
/// <param name="Jitter">A random extra service time, from zero to this.</param>
/// <param name="FailFrom">When it starts answering 503, as a fraction of the run (null: never).</param>
/// <param name="FailUntil">When it recovers, as a fraction of the run.</param>
/// <param name="Service">The mesh service it is an instance of, when not the demo's <c>catalog</c> (the canary: <c>catalog-v2</c>).</param>
/// <param name="Zone">Its zone (<c>--zones</c>), or <see langword="null"/>.</param>
/// <param name="SlowFrom">When it turns slower by <paramref name="SlowBy"/>, as a fraction of the run (null: never).</param>
/// <param name="SlowBy">How much slower it turns.</param>
internal sealed record BackendSpec(string Name, int Weight, string Role, TimeSpan Latency, TimeSpan Jitter, double? FailFrom = null, double? FailUntil = null, string? Service = null, string? Zone = null, double? SlowFrom = null, TimeSpan SlowBy = default);

/// <summary>
/// One instance of the demo's "catalog" service: a real Kestrel server on 127.0.0.1 with a port chosen by the OS.
/// It answers <c>GET /work</c> after its service time, or 503 while it is in its failure window.
/// </summary>
internal sealed class Backend : IAsyncDisposable
{
    private readonly WebApplication _app;

    private Backend(BackendSpec spec, WebApplication app, Uri address)
    {
        Spec = spec;
        _app = app;
        Address = address;
    }

    public BackendSpec Spec { get; }

    public string Name => Spec.Name;

    public Uri Address { get; }

    public int Port => Address.Port;

    /// <summary>Starts the backend; <paramref name="clock"/> and <paramref name="duration"/> place its failure window.</summary>
    public static async Task<Backend> StartAsync(BackendSpec spec, Stopwatch clock, TimeSpan duration)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();

        // The failure window lasts at least MinFailure, so that a short run shows the ejection too: at the demo's
        // rate the balancer still sends the failing endpoint a few attempts a second, and 5 in a row eject it.
        var failFrom = spec.FailFrom is { } from ? duration * from : TimeSpan.MaxValue;
        var failUntil = spec.FailUntil is { } until ? Max(duration * until, failFrom + MinFailure) : TimeSpan.MaxValue;
        var slowFrom = spec.SlowFrom is { } slow ? duration * slow : TimeSpan.MaxValue;
        app.MapGet("/health", () => "ok"); // for a Consul HTTP check (--consul): outlier detection, not Consul, judges /work
        app.MapGet("/work", async context =>
        {
            context.Response.Headers["X-Backend"] = spec.Name;
            var now = clock.Elapsed;
            if (now >= failFrom && now < failUntil)
            {
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                return;
            }

            var delay = spec.Latency + (spec.Jitter * Random.Shared.NextDouble()) + (now >= slowFrom ? spec.SlowBy : TimeSpan.Zero);
            await Task.Delay(delay, context.RequestAborted);
            await context.Response.WriteAsync(spec.Name, context.RequestAborted);
        });

        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Backend(spec, app, new Uri(address));
    }

    /// <summary>The shortest failure window of a flaky backend.</summary>
    public static readonly TimeSpan MinFailure = TimeSpan.FromSeconds(5);

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}
