using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshClient.Tests.Infrastructure;

/// <summary>
/// A real Kestrel server on 127.0.0.1 with a port chosen by the OS. It answers 200 with its name, or whatever
/// <see cref="Behavior"/> says, and counts the requests it receives (by method).
/// </summary>
public sealed class TestBackend : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _count;

    private TestBackend(string name, WebApplication app)
    {
        Name = name;
        _app = app;
    }

    public string Name { get; }

    public Uri Address { get; private set; } = null!;

    public int Port => Address.Port;

    /// <summary>Gets the number of requests received.</summary>
    public int Count => Volatile.Read(ref _count);

    public ConcurrentQueue<(string Method, string PathAndQuery, string? Host)> Requests { get; } = new();

    /// <summary>Gets or sets what the backend does; the default answers 200 with its name.</summary>
    public Func<HttpContext, Task>? Behavior { get; set; }

    public void ResetCount() => Interlocked.Exchange(ref _count, 0);

    /// <summary>Starts a backend on <paramref name="bindTo"/> (default 127.0.0.1), port chosen by the OS.</summary>
    public static async Task<TestBackend> StartAsync(string name, Func<HttpContext, Task>? behavior = null, System.Net.IPAddress? bindTo = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(bindTo ?? System.Net.IPAddress.Loopback, 0));
        var app = builder.Build();
        var backend = new TestBackend(name, app) { Behavior = behavior };
        app.Run(async context =>
        {
            Interlocked.Increment(ref backend._count);
            backend.Requests.Enqueue((context.Request.Method, context.Request.Path + context.Request.QueryString, context.Request.Headers.Host.ToString()));
            context.Response.Headers["X-Backend"] = name;
            var behave = backend.Behavior;
            if (behave is not null)
            {
                await behave(context);
            }
            else
            {
                await context.Response.WriteAsync(name);
            }
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        backend.Address = new Uri(address);
        return backend;
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}
