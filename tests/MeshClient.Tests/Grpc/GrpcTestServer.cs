using System.Net;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using MeshClient.Tests.Grpc.Proto;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshClient.Tests.Grpc;

/// <summary>
/// A real Grpc.AspNetCore server on 127.0.0.1, port chosen by the OS, speaking HTTP/2 only (h2c with prior knowledge,
/// as gRPC does over http://). It serves <c>Echo.Say</c>, answers with its name, and counts the calls it receives;
/// <see cref="Behavior"/> may replace the answer (throw an <see cref="RpcException"/> for a status).
/// </summary>
public sealed class GrpcTestServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _count;
    private int _streams;
    private int _messagesRead;

    private GrpcTestServer(string name, WebApplication app)
    {
        Name = name;
        _app = app;
    }

    public string Name { get; }

    public Uri Address { get; private set; } = null!;

    /// <summary>Gets the number of calls received.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Gets the number of streaming calls received.</summary>
    public int Streams => Volatile.Read(ref _streams);

    /// <summary>Gets the HTTP protocol of the last call received ("HTTP/2" for h2c).</summary>
    public string? LastProtocol { get; private set; }

    /// <summary>Gets or sets what the server does with a call before answering; it may throw an <see cref="RpcException"/>.</summary>
    public Func<ServerCallContext, Task>? Behavior { get; set; }

    /// <summary>Gets the number of request messages read by client-streaming and duplex calls.</summary>
    public int MessagesRead => Volatile.Read(ref _messagesRead);

    /// <summary>
    /// Gets or sets what a client-streaming or duplex call does once it has read its first request message (before
    /// answering it); it may throw an <see cref="RpcException"/>.
    /// </summary>
    public Func<ServerCallContext, Task>? AfterFirstMessage { get; set; }

    /// <summary>Starts a server: h2c, or HTTP/2 over TLS (ALPN) with <paramref name="certificate"/>.</summary>
    public static async Task<GrpcTestServer> StartAsync(string name, X509Certificate2? certificate = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0, listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            if (certificate is not null)
            {
                listen.UseHttps(TestPki.ForKestrel(certificate));
            }
        }));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton<Holder>();
        var app = builder.Build();
        var server = new GrpcTestServer(name, app);
        app.Services.GetRequiredService<Holder>().Server = server;
        app.MapGrpcService<EchoService>();
        await app.StartAsync();
        server.Address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }

    private async Task<EchoReply> SayAsync(EchoRequest request, ServerCallContext context)
    {
        Interlocked.Increment(ref _count);
        LastProtocol = context.GetHttpContext().Request.Protocol;
        if (Behavior is { } behave)
        {
            await behave(context);
        }

        return new EchoReply { Server = Name, Text = request.Text };
    }

    private async Task WatchAsync(WatchRequest request, IServerStreamWriter<EchoReply> responses, ServerCallContext context)
    {
        Interlocked.Increment(ref _streams);
        var end = DateTime.UtcNow.AddMilliseconds(request.DurationMs);
        var sent = 0;
        do
        {
            await responses.WriteAsync(new EchoReply { Server = Name, Text = (sent++).ToString(System.Globalization.CultureInfo.InvariantCulture) }, context.CancellationToken);
            await Task.Delay(Math.Max(1, request.IntervalMs), context.CancellationToken);
        }
        while (DateTime.UtcNow < end);
    }

    private async Task<EchoReply> CollectAsync(IAsyncStreamReader<EchoRequest> requests, ServerCallContext context)
    {
        Interlocked.Increment(ref _streams);
        var read = 0;
        while (await requests.MoveNext(context.CancellationToken))
        {
            Interlocked.Increment(ref _messagesRead);
            if (++read == 1 && AfterFirstMessage is { } behave)
            {
                await behave(context);
            }
        }

        return new EchoReply { Server = Name, Text = read.ToString(System.Globalization.CultureInfo.InvariantCulture) };
    }

    private async Task ChatAsync(IAsyncStreamReader<EchoRequest> requests, IServerStreamWriter<EchoReply> responses, ServerCallContext context)
    {
        Interlocked.Increment(ref _streams);
        var read = 0;
        while (await requests.MoveNext(context.CancellationToken))
        {
            Interlocked.Increment(ref _messagesRead);
            if (++read == 1 && AfterFirstMessage is { } behave)
            {
                await behave(context);
            }

            await responses.WriteAsync(new EchoReply { Server = Name, Text = requests.Current.Text }, context.CancellationToken);
        }
    }

    internal sealed class Holder
    {
        public GrpcTestServer Server { get; set; } = null!;
    }

    internal sealed class EchoService(Holder holder) : Echo.EchoBase
    {
        public override Task<EchoReply> Say(EchoRequest request, ServerCallContext context) => holder.Server.SayAsync(request, context);

        public override Task Watch(WatchRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context) =>
            holder.Server.WatchAsync(request, responseStream, context);

        public override Task<EchoReply> Collect(IAsyncStreamReader<EchoRequest> requestStream, ServerCallContext context) =>
            holder.Server.CollectAsync(requestStream, context);

        public override Task Chat(IAsyncStreamReader<EchoRequest> requestStream, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context) =>
            holder.Server.ChatAsync(requestStream, responseStream, context);
    }
}
