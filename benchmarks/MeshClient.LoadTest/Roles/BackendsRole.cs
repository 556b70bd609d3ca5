using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshClient.LoadTest.Roles;

/// <summary>
/// <c>--role backends</c>: a child process hosting any number of Kestrel backends on 127.0.0.1 (port 0). Each answers
/// every request with a 1,024-byte body, after its delay, with its status. One process for all backends keeps their
/// CPU out of the client's accounting (the point of a child) without four process start-ups per scenario.
/// Commands (one per stdin line, one answer line each):
/// <c>start DELAY_MS STATUS</c> → <c>started ID PORT</c>; <c>set ID DELAY_MS STATUS</c> → <c>ok</c>;
/// <c>stop ID</c> → <c>stopped ID</c>; <c>counts</c> → <c>counts ID:N ...</c> (requests received, ever, stopped backends included).
/// The process exits when its stdin closes.
/// </summary>
internal static class BackendsRole
{
    public static readonly byte[] Payload = CreatePayload();

    public static async Task<int> RunAsync(TextReader input, TextWriter output)
    {
        var backends = new ConcurrentDictionary<int, Backend>();
        var stopped = new ConcurrentDictionary<int, Backend>(); // their counts still count
        var nextId = 0;
        output.WriteLine("ready");
        output.Flush();
        while (await input.ReadLineAsync() is { } line)
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0)
            {
                continue;
            }

            string answer;
            try
            {
                switch (parts[0])
                {
                    case "start":
                        var backend = new Backend(++nextId, Int(parts[1]), Int(parts[2]));
                        await backend.StartAsync();
                        backends[backend.Id] = backend;
                        answer = $"started {backend.Id} {backend.Port}";
                        break;
                    case "set":
                        var target = backends[Int(parts[1])];
                        target.DelayMs = Int(parts[2]);
                        target.Status = Int(parts[3]);
                        answer = "ok";
                        break;
                    case "stop":
                        if (backends.TryRemove(Int(parts[1]), out var stopping))
                        {
                            stopped[stopping.Id] = stopping;
                            await stopping.StopAsync();
                        }

                        answer = $"stopped {parts[1]}";
                        break;
                    case "counts":
                        answer = "counts " + string.Join(' ', backends.Values.Concat(stopped.Values).OrderBy(b => b.Id).Select(b => $"{b.Id}:{b.Count}"));
                        break;
                    default:
                        answer = $"error unknown command '{parts[0]}'";
                        break;
                }
            }
            catch (Exception e)
            {
                answer = $"error {e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}";
            }

            output.WriteLine(answer);
            output.Flush();
        }

        foreach (var backend in backends.Values)
        {
            await backend.StopAsync();
        }

        return 0;
    }

    private static int Int(string text) => int.Parse(text, CultureInfo.InvariantCulture);

    private static byte[] CreatePayload()
    {
        var payload = new byte[1024];
        for (var i = 0; i < payload.Length; i++)
        {
            payload[i] = (byte)('a' + (i % 26));
        }

        return payload;
    }

    private sealed class Backend(int id, int delayMs, int status)
    {
        private WebApplication? _app;
        private long _count;

        public int Id { get; } = id;

        public int Port { get; private set; }

        public volatile int DelayMs = delayMs;

        public volatile int Status = status;

        public long Count => Interlocked.Read(ref _count);

        public async Task StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
            var app = builder.Build();
            app.Run(HandleAsync);
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            Port = new Uri(address).Port;
            _app = app;
        }

        public async Task StopAsync()
        {
            if (_app is null)
            {
                return;
            }

            // Graceful: in-flight requests finish (up to 1 s), idle keep-alive connections are closed, and from
            // now on the port refuses connections.
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try
            {
                await _app.StopAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
            }

            await _app.DisposeAsync();
            _app = null;
        }

        private async Task HandleAsync(HttpContext context)
        {
            Interlocked.Increment(ref _count);
            var delay = DelayMs;
            if (delay > 0)
            {
                await Task.Delay(delay, context.RequestAborted);
            }

            context.Response.StatusCode = Status;
            context.Response.ContentLength = Payload.Length;
            context.Response.ContentType = "application/octet-stream";
            await context.Response.Body.WriteAsync(Payload, context.RequestAborted);
        }
    }
}
