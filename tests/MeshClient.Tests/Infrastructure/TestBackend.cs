using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using System.Net.Security;
using Microsoft.AspNetCore.Server.Kestrel.Https;
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
    public static Task<TestBackend> StartAsync(string name, Func<HttpContext, Task>? behavior = null, System.Net.IPAddress? bindTo = null) =>
        StartAsync(name, behavior, bindTo, listen: static _ => { });

    /// <summary>
    /// Starts an HTTPS backend with <paramref name="certificate"/>. It asks for a client certificate unless
    /// <paramref name="clientCertificate"/> is <c>NoCertificate</c>, and refuses a handshake without one when it is
    /// <c>RequireCertificate</c>; any certificate is accepted (tests check which one arrived through
    /// <c>HttpContext.Connection.ClientCertificate</c>).
    /// </summary>
    public static Task<TestBackend> StartHttpsAsync(string name, X509Certificate2 certificate, ClientCertificateMode clientCertificate, Func<HttpContext, Task>? behavior = null) =>
        StartAsync(name, behavior, bindTo: null, listen =>
        {
            // The handshake callback hands SslStream the options as they are: Kestrel's own checks of the server
            // certificate (its key usage) do not apply, so a test can serve a certificate a client must refuse.
            var server = TestPki.ForKestrel(certificate);
            listen.UseHttps(new TlsHandshakeCallbackOptions
            {
                OnConnection = _ => ValueTask.FromResult(new SslServerAuthenticationOptions
                {
                    ServerCertificate = server,
                    ClientCertificateRequired = clientCertificate != ClientCertificateMode.NoCertificate,
                    RemoteCertificateValidationCallback = (_, client, _, _) => client is not null || clientCertificate != ClientCertificateMode.RequireCertificate,
                }),
            });
        });

    private static async Task<TestBackend> StartAsync(string name, Func<HttpContext, Task>? behavior, System.Net.IPAddress? bindTo, Action<ListenOptions> listen)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(bindTo ?? System.Net.IPAddress.Loopback, 0, listen));
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
