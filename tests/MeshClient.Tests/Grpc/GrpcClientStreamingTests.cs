using Grpc.Core;
using MeshClient.Tests.Grpc.Proto;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace MeshClient.Tests.Grpc;

/// <summary>
/// Issue 14, items 3 and 5: a client-streaming or duplex call is balanced when it starts (each call picks its endpoint,
/// not its connection), counts as in flight on that endpoint while it is open, and is never sent again once its first
/// message went out — even when the server then answers <c>UNAVAILABLE</c>, the status the mesh retries for a unary call.
/// </summary>
public sealed class GrpcClientStreamingTests(ITestOutputHelper output)
{
    public enum Kind
    {
        ClientStreaming,
        Duplex,
    }

    [Theory]
    [InlineData(Kind.ClientStreaming)]
    [InlineData(Kind.Duplex)]
    public async Task SixOpenCalls_AreBalancedWhenTheyStart_AndCountAsInFlightUntilTheyEnd(Kind kind)
    {
        await using var servers = await GrpcServers.StartAsync(3);
        // Round robin: each call's pick is predictable, so the spread shows the calls are balanced one by one.
        await using var mesh = servers.CreateMesh(new Dictionary<string, string?> { ["Mesh:Services:echo:LoadBalancer"] = "RoundRobin" });
        var client = mesh.Services.GetRequiredService<Echo.EchoClient>();
        var table = mesh.Registry.GetTable("echo");

        var calls = new List<Call>();
        try
        {
            for (var i = 0; i < 6; i++)
            {
                var call = Call.Start(client, kind);
                calls.Add(call);
                await call.SendAsync("first" + i);
            }

            // Every call reached a server and is open there: two per server, one connection each, six picks.
            await Eventually.TrueAsync(() => servers.Sum(s => s.MessagesRead) == 6, TimeSpan.FromSeconds(10), "each server read its calls' first messages");
            if (kind == Kind.Duplex)
            {
                foreach (var call in calls)
                {
                    Assert.StartsWith("first", await call.ReadAsync()); // the response headers and first message are in
                }
            }

            output.WriteLine($"{kind}: streams per server {string.Join(", ", servers.Select(s => $"{s.Name}={s.Streams}"))}; " +
                $"per endpoint (in flight + open streams): {string.Join(", ", table.States.Select(s => $"{s.InFlight}+{s.OpenStreams}"))}");
            Assert.All(servers, s => Assert.Equal(2, s.Streams));
            Assert.All(table.States, s => Assert.Equal(2, s.InFlight + s.OpenStreams)); // what the status page shows as in flight
            if (kind == Kind.ClientStreaming)
            {
                // No response headers yet (the server answers when the request stream ends): still load for the picks.
                Assert.All(table.States, s => Assert.Equal(2, s.InFlight));
            }
            else
            {
                // Answered (headers and a message): an open stream, no longer load for the picks.
                Assert.All(table.States, s => Assert.Equal(2, s.OpenStreams));
            }

            // A second message on each, then the end: every call completes OK on the server it started on.
            foreach (var call in calls)
            {
                await call.SendAsync("second");
                await call.CompleteAsync();
            }

            foreach (var call in calls)
            {
                string[] expected = kind == Kind.ClientStreaming ? ["2"] : ["second"]; // the count of messages read, or the echo of the second
                Assert.Equal(expected, await call.FinishAsync());
                Assert.Equal(StatusCode.OK, call.Status.StatusCode);
            }

            Assert.Equal(6, servers.Sum(s => s.Streams));
            Assert.Equal(12, servers.Sum(s => s.MessagesRead));
            await Eventually.TrueAsync(() => table.States.All(s => s.InFlight == 0 && s.OpenStreams == 0), TimeSpan.FromSeconds(5), "every lease ends with its call");
        }
        finally
        {
            foreach (var call in calls)
            {
                call.Dispose();
            }
        }
    }

    [Theory]
    [InlineData(Kind.ClientStreaming)]
    [InlineData(Kind.Duplex)]
    public async Task AServerThatFailsAfterTheFirstMessage_WithUnavailable_FailsTheCall_AndIsNeverRetried(Kind kind)
    {
        await using var servers = await GrpcServers.StartAsync(3);
        foreach (var server in servers)
        {
            // Trailers-only UNAVAILABLE (no headers, no message sent before): a unary call would be retried elsewhere.
            server.AfterFirstMessage = _ => throw new RpcException(new global::Grpc.Core.Status(StatusCode.Unavailable, "down after the first message"));
        }

        await using var mesh = servers.CreateMesh(); // the defaults: PeakEwma, retries on
        var client = mesh.Services.GetRequiredService<Echo.EchoClient>();
        var table = mesh.Registry.GetTable("echo");

        for (var i = 1; i <= 3; i++)
        {
            using var call = Call.Start(client, kind);
            await call.SendAsync("only" + i);
            var failure = await Assert.ThrowsAsync<RpcException>(async () => await call.FinishAsync());
            Assert.Equal(StatusCode.Unavailable, failure.StatusCode);

            // The server saw exactly one call for it, and read its one message: never sent again.
            Assert.Equal(i, servers.Sum(s => s.Streams));
            Assert.Equal(i, servers.Sum(s => s.MessagesRead));
        }

        output.WriteLine($"{kind}: calls per server {string.Join(", ", servers.Select(s => $"{s.Name}={s.Streams}"))}");
        await Eventually.TrueAsync(() => table.States.All(s => s.InFlight == 0 && s.OpenStreams == 0), TimeSpan.FromSeconds(5), "every lease ends with its call");
    }

    /// <summary>A client-streaming or duplex call, driven the same way.</summary>
    private sealed class Call : IDisposable
    {
        private readonly AsyncClientStreamingCall<EchoRequest, EchoReply>? _collect;
        private readonly AsyncDuplexStreamingCall<EchoRequest, EchoReply>? _chat;

        private Call(AsyncClientStreamingCall<EchoRequest, EchoReply>? collect, AsyncDuplexStreamingCall<EchoRequest, EchoReply>? chat)
        {
            _collect = collect;
            _chat = chat;
        }

        public global::Grpc.Core.Status Status => _collect?.GetStatus() ?? _chat!.GetStatus();

        public static Call Start(Echo.EchoClient client, Kind kind)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            return kind == Kind.ClientStreaming ? new Call(client.Collect(deadline: deadline), null) : new Call(null, client.Chat(deadline: deadline));
        }

        public Task SendAsync(string text) => (_collect?.RequestStream ?? _chat!.RequestStream).WriteAsync(new EchoRequest { Text = text });

        public Task CompleteAsync() => (_collect?.RequestStream ?? _chat!.RequestStream).CompleteAsync();

        public async Task<string> ReadAsync()
        {
            Assert.True(await _chat!.ResponseStream.MoveNext(CancellationToken.None));
            return _chat.ResponseStream.Current.Text;
        }

        /// <summary>Reads what is left of the response: the client-streaming call's reply, or the duplex call's remaining messages.</summary>
        public async Task<List<string>> FinishAsync()
        {
            if (_collect is not null)
            {
                return [(await _collect.ResponseAsync).Text];
            }

            var texts = new List<string>();
            while (await _chat!.ResponseStream.MoveNext(CancellationToken.None))
            {
                texts.Add(_chat.ResponseStream.Current.Text);
            }

            return texts;
        }

        public void Dispose()
        {
            _collect?.Dispose();
            _chat?.Dispose();
        }
    }
}
