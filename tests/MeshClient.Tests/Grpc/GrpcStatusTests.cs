using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using Grpc.Core;
using MeshClient.Model;
using MeshClient.Tests.Grpc.Proto;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace MeshClient.Tests.Grpc;

/// <summary>
/// Issue 14, item 2 (phase 1): a gRPC status in a trailers-only answer (HTTP 200, <c>grpc-status</c> in the headers) is
/// read by the mesh: <c>UNAVAILABLE</c> fails the endpoint and is retried elsewhere; other statuses are the application's.
/// </summary>
public sealed class GrpcStatusTests(ITestOutputHelper output)
{
    [Fact]
    public async Task OneServerAnsweringUnavailable_OutOfThree_AtLeast999PerMilleOf900CallsSucceed()
    {
        await using var servers = await GrpcServers.StartAsync(3);
        var bad = servers[1];
        bad.Behavior = _ => throw new RpcException(new global::Grpc.Core.Status(StatusCode.Unavailable, "going away"));
        await using var mesh = servers.CreateMesh();
        var client = mesh.Services.GetRequiredService<Echo.EchoClient>();

        var failures = new ConcurrentQueue<RpcException>();
        var succeeded = 0;
        await Load.RunAsync(900, 6, async i =>
        {
            try
            {
                var reply = await client.SayAsync(new EchoRequest { Text = "hi" + i }, deadline: DateTime.UtcNow.AddSeconds(10));
                Assert.NotEqual(bad.Name, reply.Server);
                Assert.Equal("hi" + i, reply.Text); // the retry sent the same message again
                Interlocked.Increment(ref succeeded);
            }
            catch (RpcException ex)
            {
                failures.Enqueue(ex);
            }
        });

        var counts = string.Join(", ", servers.Select(s => $"{s.Name}={s.Count}"));
        output.WriteLine($"{succeeded} of 900 succeeded; calls received: {counts} (g1 answers UNAVAILABLE)");
        Assert.True(succeeded >= 0.999 * 900, $"{succeeded} of 900 calls succeeded ({counts}); first failure: {failures.FirstOrDefault()}");
        // Ejected after its consecutive failures, then probed now and then: it sees a handful of the 900 calls.
        Assert.True(bad.Count <= 16, $"the UNAVAILABLE server saw {bad.Count} calls ({counts})");
    }

    [Fact]
    public async Task AnApplicationStatus_IsTheAnswer_NeitherRetriedNorCountedAgainstTheEndpoint()
    {
        await using var servers = await GrpcServers.StartAsync(3);
        foreach (var server in servers)
        {
            server.Behavior = _ => throw new RpcException(new global::Grpc.Core.Status(StatusCode.NotFound, "no such thing"));
        }

        // Round robin: an ejection would show as a server left out (peak-EWMA could leave one short by latency alone).
        await using var mesh = servers.CreateMesh(new Dictionary<string, string?> { ["Mesh:Services:echo:LoadBalancer"] = "RoundRobin" });
        var client = mesh.Services.GetRequiredService<Echo.EchoClient>();

        for (var i = 0; i < 30; i++)
        {
            var ex = await Assert.ThrowsAsync<RpcException>(() => client.SayAsync(new EchoRequest(), deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, ex.StatusCode);
        }

        Assert.Equal(30, servers.Sum(s => s.Count)); // one attempt per call
        Assert.All(servers, s => Assert.True(s.Count >= 9, $"{s.Name} got {s.Count} of 30: no endpoint was ejected"));
        Assert.All(mesh.Registry.GetTable("echo").States, s =>
        {
            Assert.Equal(EndpointStatus.Healthy, s.Status);
            Assert.Equal(0, s.ConsecutiveFailures);
        });
    }

    [Fact]
    public async Task ResourceExhausted_IsNotRetried_AndItsPushbackKeepsTheEndpointOutOfThePicks()
    {
        await using var servers = await GrpcServers.StartAsync(3);
        var busy = servers[0];
        busy.Behavior = context =>
        {
            context.ResponseTrailers.Add("grpc-retry-pushback-ms", "60000");
            throw new RpcException(new global::Grpc.Core.Status(StatusCode.ResourceExhausted, "slow down"));
        };
        await using var mesh = servers.CreateMesh();
        var client = mesh.Services.GetRequiredService<Echo.EchoClient>();

        var exhausted = 0;
        for (var i = 0; i < 60; i++)
        {
            try
            {
                await client.SayAsync(new EchoRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.ResourceExhausted)
            {
                exhausted++;
            }
        }

        Assert.Equal(busy.Count, exhausted); // each answer reached its caller: not retried
        Assert.InRange(busy.Count, 1, 3); // then a minute of pushback: no more picks
    }

    [Theory]
    [InlineData("14", null, nameof(AttemptOutcome.Failure), 0)]
    [InlineData("4", null, nameof(AttemptOutcome.Failure), 0)]
    [InlineData("8", "250", nameof(AttemptOutcome.Overloaded), 250)]
    [InlineData("8", "-1", nameof(AttemptOutcome.Overloaded), 0)]
    [InlineData("8", "soon", nameof(AttemptOutcome.Overloaded), 0)]
    [InlineData("0", null, nameof(AttemptOutcome.Success), 0)]
    [InlineData("5", null, nameof(AttemptOutcome.Success), 0)]
    [InlineData("13", null, nameof(AttemptOutcome.Success), 0)]
    [InlineData("x", null, nameof(AttemptOutcome.Success), 0)]
    public void TheClassifier_ReadsTheStatusOfATrailersOnlyAnswer(string status, string? pushback, string expected, int retryAfterMs)
    {
        using var response = Answer(status, pushback, grpcRequest: true);

        Assert.Equal(status == "x" ? GrpcProtocol.NoStatus : int.Parse(status), GrpcProtocol.TrailersOnlyStatus(response));
        Assert.Equal(Enum.Parse<AttemptOutcome>(expected), OutcomeClassifier.OfGrpcStatus(response.Headers, out var retryAfter));
        Assert.Equal(TimeSpan.FromMilliseconds(retryAfterMs), retryAfter);

        // A ByteArrayContent is not Grpc.Net.Client's single message: even a trailers-only UNAVAILABLE is not sent again.
        Assert.Null(OutcomeClassifier.RetryReason(response, null, out _));
    }

    [Fact]
    public void TheClassifier_LeavesOtherAnswersAlone()
    {
        using var http = Answer("14", null, grpcRequest: false);
        Assert.Equal(GrpcProtocol.NoStatus, GrpcProtocol.TrailersOnlyStatus(http));
        Assert.Null(OutcomeClassifier.RetryReason(http, null, out _));

        using var failed = Answer("0", null, grpcRequest: true);
        failed.StatusCode = HttpStatusCode.BadGateway;
        Assert.Equal(GrpcProtocol.NoStatus, GrpcProtocol.TrailersOnlyStatus(failed));
        Assert.Equal(AttemptOutcome.Failure, OutcomeClassifier.OfResponse(failed.StatusCode));
    }

    [Theory]
    [InlineData("100m", 100 * TimeSpan.TicksPerMillisecond)]
    [InlineData("2S", 2 * TimeSpan.TicksPerSecond)]
    [InlineData("1M", TimeSpan.TicksPerMinute)]
    [InlineData("1H", TimeSpan.TicksPerHour)]
    [InlineData("250u", 250 * TimeSpan.TicksPerMicrosecond)]
    [InlineData("99999999n", 999999L)]
    [InlineData("100", -1L)]
    [InlineData("m", -1L)]
    [InlineData("123456789m", -1L)]
    [InlineData("-5m", -1L)]
    [InlineData("5x", -1L)]
    public void TheDeadline_IsReadFromGrpcTimeout(string value, long ticks)
    {
        Assert.Equal(ticks < 0 ? null : TimeSpan.FromTicks(ticks), GrpcProtocol.ParseTimeout(value));
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(5, false)]
    [InlineData(8, false)]
    [InlineData(2, true)]
    [InlineData(4, true)]
    [InlineData(12, true)]
    [InlineData(13, true)]
    [InlineData(14, true)]
    [InlineData(15, true)]
    public void ACallFailure_IsAServerErrorStatus_AsOpenTelemetryMarksThem(int status, bool failure)
    {
        Assert.Equal(failure, OutcomeClassifier.IsGrpcCallFailure(status));
    }

    private static HttpResponseMessage Answer(string status, string? pushback, bool grpcRequest)
    {
        var content = new ByteArrayContent([0, 0, 0, 0, 0]);
        content.Headers.ContentType = new MediaTypeHeaderValue(grpcRequest ? "application/grpc" : "application/json");
        var response = new HttpResponseMessage(HttpStatusCode.OK)
        {
            RequestMessage = new HttpRequestMessage(HttpMethod.Post, "http://127.0.0.1:5001/meshtests.Echo/Say") { Content = content },
        };
        response.Headers.TryAddWithoutValidation("grpc-status", status);
        if (pushback is not null)
        {
            response.Headers.TryAddWithoutValidation("grpc-retry-pushback-ms", pushback);
        }

        return response;
    }
}
