using System.Globalization;
using System.Net;
using Grpc.Core;
using MeshClient.GrpcBenchmark.Proto;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshClient.GrpcBenchmark;

/// <summary>
/// <c>--role servers N</c>: a child process hosting N Grpc.AspNetCore servers on 127.0.0.1 (port 0), HTTP/2 only (h2c),
/// so that their CPU stays out of the client's. It prints <c>ready PORT...</c>, then takes commands on stdin, one
/// answer line each: <c>set I DELAY_MS STATUS</c> (STATUS 0 answers OK, any other code is thrown as that status,
/// which Grpc.AspNetCore sends trailers-only) → <c>ok</c>; <c>counts</c> → <c>counts N0 N1 ...</c> (calls received,
/// ever). It exits when its stdin closes.
/// </summary>
internal static class ServersRole
{
    public static async Task<int> RunAsync(int count)
    {
        var servers = new List<Server>();
        for (var i = 0; i < count; i++)
        {
            servers.Add(await Server.StartAsync("s" + i));
        }

        Console.Out.WriteLine("ready " + string.Join(' ', servers.Select(s => s.Port.ToString(CultureInfo.InvariantCulture))));
        Console.Out.Flush();
        while (await Console.In.ReadLineAsync() is { } line)
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            string answer;
            try
            {
                switch (parts.FirstOrDefault())
                {
                    case "set":
                        var server = servers[Int(parts[1])];
                        server.DelayMs = Int(parts[2]);
                        server.Status = Int(parts[3]);
                        answer = "ok";
                        break;
                    case "counts":
                        answer = "counts " + string.Join(' ', servers.Select(s => s.Count.ToString(CultureInfo.InvariantCulture)));
                        break;
                    default:
                        answer = $"error unknown command '{line}'";
                        break;
                }
            }
            catch (Exception e) when (e is FormatException or ArgumentOutOfRangeException or IndexOutOfRangeException)
            {
                answer = $"error {e.GetType().Name}: {e.Message}";
            }

            Console.Out.WriteLine(answer);
            Console.Out.Flush();
        }

        foreach (var server in servers)
        {
            await server.StopAsync();
        }

        return 0;
    }

    private static int Int(string text) => int.Parse(text, CultureInfo.InvariantCulture);

    internal sealed class Server
    {
        private WebApplication _app = null!;
        private long _count;

        private Server(string name) => Name = name;

        public string Name { get; }

        public int Port { get; private set; }

        public volatile int DelayMs;

        public volatile int Status;

        public long Count => Interlocked.Read(ref _count);

        public static async Task<Server> StartAsync(string name)
        {
            var server = new Server(name);
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2));
            builder.Services.AddGrpc();
            builder.Services.AddSingleton(server);
            var app = builder.Build();
            app.MapGrpcService<EchoService>();
            await app.StartAsync();
            server.Port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
            server._app = app;
            return server;
        }

        public async Task StopAsync()
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                await _app.StopAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
            }

            await _app.DisposeAsync();
        }

        public async Task<EchoReply> SayAsync(EchoRequest request, ServerCallContext context)
        {
            Interlocked.Increment(ref _count);
            var delay = DelayMs;
            if (delay > 0)
            {
                await Task.Delay(delay, context.CancellationToken);
            }

            var status = Status;
            if (status != 0)
            {
                throw new RpcException(new Grpc.Core.Status((StatusCode)status, "benchmark: this server is set to fail"));
            }

            return new EchoReply { Server = Name, Text = request.Text };
        }
    }

    internal sealed class EchoService(Server server) : Echo.EchoBase
    {
        public override Task<EchoReply> Say(EchoRequest request, ServerCallContext context) => server.SayAsync(request, context);
    }
}
