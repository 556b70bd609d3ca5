using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace MeshClient.Tests.Chaos;

/// <summary>
/// A backend the chaos test can kill (gracefully or by aborting every connection) and start again, on its old
/// port or a new one, and turn slow. It logs every POST by its <c>X-Request-Id</c> in a ledger shared by all
/// backends, so that a POST executed twice anywhere is seen.
/// </summary>
internal sealed class ChaosBackend : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, int> _postLedger;
    private readonly Lock _lifecycle = new();
    private WebApplication? _app;
    private int _generation;
    private long _requests;

    public ChaosBackend(string name, ConcurrentDictionary<string, int> postLedger)
    {
        Name = name;
        _postLedger = postLedger;
    }

    public string Name { get; }

    /// <summary>Gets the Consul service id of the current incarnation (a restart on a new port is a new instance).</summary>
    public string ServiceId => $"{Name}-{_generation}";

    public int Port { get; private set; }

    public bool IsUp => Volatile.Read(ref _app) is not null;

    /// <summary>Gets or sets the extra latency of application requests (never of <c>/health</c>).</summary>
    public TimeSpan Delay { get; set; }

    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Starts listening: on <paramref name="port"/> if given (falls back to a new port if it is taken).</summary>
    public async Task StartAsync(bool samePort)
    {
        if (!samePort || Port == 0)
        {
            _generation++;
            Port = 0;
        }

        WebApplication app;
        try
        {
            app = await StartOnAsync(Port);
        }
        catch (IOException) when (Port != 0)
        {
            // The old port was taken meanwhile (an ephemeral client port, say): come back as a new instance.
            _generation++;
            app = await StartOnAsync(0);
        }

        Port = new Uri(app.Urls.First()).Port;
        Volatile.Write(ref _app, app);
    }

    private async Task<WebApplication> StartOnAsync(int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port));
        var app = builder.Build();
        app.Run(HandleAsync);
        try
        {
            await app.StartAsync();
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            await app.DisposeAsync();
            throw new IOException($"Port {port} is taken.", ex);
        }

        return app;
    }

    private async Task HandleAsync(HttpContext context)
    {
        if (context.Request.Path == "/health")
        {
            await context.Response.WriteAsync("ok");
            return;
        }

        Interlocked.Increment(ref _requests);
        context.Response.Headers["X-Backend"] = Name;
        var delay = Delay;
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, context.RequestAborted);
        }

        if (HttpMethods.IsPost(context.Request.Method))
        {
            var id = context.Request.Headers["X-Request-Id"].ToString();
            _postLedger.AddOrUpdate(id, 1, static (_, count) => count + 1);
            context.Response.StatusCode = StatusCodes.Status201Created;
        }

        // Content-Length and one write: the response leaves in one flush. Chunked (a write, then the last chunk when the
        // handler returns), a kill by abort between the two cut a GET's body after its 200 headers had reached the
        // caller (CI, seed 1953052685): a response the mesh had already returned, which no mesh retries (Envoy and
        // Linkerd neither: the response has started), not a failure of the mesh to route around a dead backend.
        var body = System.Text.Encoding.UTF8.GetBytes(Name);
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body);
    }

    /// <summary>Stops the backend: gracefully (in-flight requests finish) or by aborting every connection at once.</summary>
    public async Task KillAsync(bool abort)
    {
        WebApplication? app;
        lock (_lifecycle)
        {
            app = _app;
            _app = null;
        }

        if (app is null)
        {
            return;
        }

        using var grace = new CancellationTokenSource(abort ? TimeSpan.Zero : TimeSpan.FromSeconds(1));
        try
        {
            await app.StopAsync(grace.Token);
        }
        catch (OperationCanceledException)
        {
        }

        await app.DisposeAsync();
    }

    public async ValueTask DisposeAsync() => await KillAsync(abort: true);
}
