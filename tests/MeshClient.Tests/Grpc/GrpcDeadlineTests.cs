using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Grpc.Core;
using MeshClient.Tests.Grpc.Proto;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace MeshClient.Tests.Grpc;

/// <summary>Issue 14, item 4: the call's deadline (<c>grpc-timeout</c>) bounds the mesh's total and attempt timeouts.</summary>
public sealed class GrpcDeadlineTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ADeadlineOf100Ms_ToSlowServers_EndsInTime_WithDeadlineExceeded_AndOneAttemptPerCall()
    {
        await using var servers = await GrpcServers.StartAsync(3);
        await using var mesh = servers.CreateMesh();
        var client = mesh.Services.GetRequiredService<Echo.EchoClient>();

        // Warm up (connections, first runs of the code), then every server turns slow.
        await Load.RunAsync(9, 3, async _ => await client.SayAsync(new EchoRequest(), deadline: DateTime.UtcNow.AddSeconds(10)));
        var warmUp = servers.Sum(s => s.Count);
        foreach (var server in servers)
        {
            server.Behavior = context => Task.Delay(TimeSpan.FromSeconds(5), context.CancellationToken);
        }

        var longest = TimeSpan.Zero;
        for (var i = 0; i < 10; i++)
        {
            var watch = Stopwatch.StartNew();
            var ex = await Assert.ThrowsAsync<RpcException>(() => client.SayAsync(new EchoRequest(), deadline: DateTime.UtcNow.AddMilliseconds(100)).ResponseAsync);
            watch.Stop();
            Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
            longest = watch.Elapsed > longest ? watch.Elapsed : longest;
        }

        output.WriteLine($"longest call: {longest.TotalMilliseconds:F0} ms; calls received: {string.Join(", ", servers.Select(s => $"{s.Name}={s.Count}"))}");
        Assert.True(longest < TimeSpan.FromSeconds(1), $"a call took {longest}");
        Assert.InRange(servers.Sum(s => s.Count) - warmUp, 1, 10); // no retry: at most one attempt per call

        // A call cancelled at its deadline is the endpoint's timeout, not the caller's change of mind: it counts.
        var states = mesh.Registry.GetTable("echo").States;
        output.WriteLine($"endpoints: {string.Join(", ", states.Select(s => $"{s.Status}/{s.ConsecutiveFailures}"))}");
        Assert.Contains(states, s => s.ConsecutiveFailures > 0 || s.Status != MeshClient.Model.EndpointStatus.Healthy);
    }

    /// <summary>
    /// The mesh's own bound, without Grpc.Net.Client's timer: a gRPC request with <c>grpc-timeout: 100m</c> sent through a
    /// plain mesh client to a server that never answers ends at the deadline (the mesh's total timeout) with a gRPC
    /// DEADLINE_EXCEEDED, after one attempt, although the service's timeouts are the defaults (10 s per attempt, 30 s in all).
    /// </summary>
    [Fact]
    public async Task TheGrpcTimeoutHeader_BoundsTheMeshTimeouts_ForThatCall()
    {
        // A GET is answered at once (the warm-up: connection and first runs of the code); a POST after 10 s.
        await using var slow = await TestBackend.StartAsync("slow", context => context.Request.Method == "GET"
            ? context.Response.WriteAsync("ok")
            : Task.Delay(TimeSpan.FromSeconds(10), context.RequestAborted));
        await using var mesh = MeshHost.Create(MeshHost.ServiceSettings("slow", "RoundRobin", (slow, 1)));
        var client = mesh.CreateClient();
        (await client.GetAsync("http://slow/warm")).Dispose();

        var watch = Stopwatch.StartNew();
        using var request = GrpcRequest("100m");
        using var response = await client.SendAsync(request);
        watch.Stop();

        // The gRPC answer to a deadline: a trailers-only DEADLINE_EXCEEDED (an exception would reach Grpc.Net.Client's
        // caller as INTERNAL).
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/grpc", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("4", Assert.Single(response.Headers.GetValues("grpc-status")));

        var attempts = slow.Requests.Count(r => r.Method == "POST");
        output.WriteLine($"ended after {watch.Elapsed.TotalMilliseconds:F0} ms, {attempts} attempt(s)");
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(90), TimeSpan.FromSeconds(2));
        Assert.Equal(1, attempts);

        // Without the header the same request is bounded by the service's timeouts only.
        using var plain = GrpcRequest(null);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(600));
        watch.Restart();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.SendAsync(plain, cts.Token));
        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(550), $"ended after {watch.Elapsed}");
    }

    private static HttpRequestMessage GrpcRequest(string? timeout)
    {
        var content = new ByteArrayContent([0, 0, 0, 0, 0]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        var request = new HttpRequestMessage(HttpMethod.Post, "http://slow/meshtests.Echo/Say") { Content = content };
        if (timeout is not null)
        {
            request.Headers.TryAddWithoutValidation("grpc-timeout", timeout);
        }

        return request;
    }
}
