using System.Net;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Polly.Timeout;

namespace MeshClient.Tests.Routing;

/// <summary>
/// A route's <c>Timeout</c> is the total timeout of the calls it routes: it bounds the backend's own total and attempt
/// timeouts (the call's deadline, as a gRPC deadline does), on the mesh's clock.
/// </summary>
public sealed class RouteTimeoutTests
{
    [Fact]
    public async Task RouteTimeout_EndsTheCall_WhileAnotherRouteToTheSameBackendWaits()
    {
        var time = FakeTime.Create();
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:Resilience:RetryBaseDelay"] = "00:00:00",
            ["Mesh:Services:catalog:Routes:0:Name"] = "quick",
            ["Mesh:Services:catalog:Routes:0:Match:PathPrefix"] = "/quick",
            ["Mesh:Services:catalog:Routes:0:Timeout"] = "00:00:00.200",
            ["Mesh:Services:catalog:Routes:0:Backends:0:Service"] = "catalog-v1",
            ["Mesh:Services:catalog:Routes:1:Name"] = "rest",
            ["Mesh:Services:catalog:Routes:1:Backends:0:Service"] = "catalog-v1",
        };
        await using var mesh = await RoutedMesh.StartAsync(1, 0, settings, time);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        mesh.V1[0].Behavior = async ctx =>
        {
            await release.Task.WaitAsync(ctx.RequestAborted);
            ctx.Response.StatusCode = 200;
        };
        var client = mesh.Client;

        var quick = client.GetAsync("http://catalog/quick/items");
        var rest = client.GetAsync("http://catalog/items");
        await Poll.UntilAsync(() => mesh.V1[0].Count == 2);

        // 250 ms later (the backend's own total timeout is 30 s): the quick route's call is over, the other waits.
        time.Advance(TimeSpan.FromMilliseconds(250));
        await Assert.ThrowsAsync<TimeoutRejectedException>(() => quick.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(rest.IsCompleted);
        Assert.Equal(2, mesh.V1[0].Count); // no retry after the route's timeout

        release.SetResult();
        using var response = await rest.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public void RouteTimeout_AndGrpcDeadline_TheShorterWins_AndTheRouteHasNoGrace()
    {
        var time = FakeTime.Create();
        var start = time.GetTimestamp();

        var routed = new MeshRequestContext("catalog");
        routed.LimitDeadline(TimeSpan.FromMilliseconds(300), start);
        Assert.Equal(TimeSpan.FromMilliseconds(300), routed.Deadline);
        Assert.Equal(TimeSpan.FromMilliseconds(300), routed.Remaining(time)); // no grace

        var shorterGrpc = new MeshRequestContext("catalog");
        shorterGrpc.SetDeadline(TimeSpan.FromMilliseconds(100), start);
        shorterGrpc.LimitDeadline(TimeSpan.FromSeconds(1), start);
        Assert.Equal(TimeSpan.FromMilliseconds(100), shorterGrpc.Deadline);
        Assert.Equal(TimeSpan.FromMilliseconds(120), shorterGrpc.Remaining(time)); // the gRPC deadline keeps its grace (20 ms)

        var longerGrpc = new MeshRequestContext("catalog");
        longerGrpc.SetDeadline(TimeSpan.FromSeconds(5), start);
        longerGrpc.LimitDeadline(TimeSpan.FromSeconds(1), start);
        Assert.Equal(TimeSpan.FromSeconds(1), longerGrpc.Deadline);
        Assert.Equal(TimeSpan.FromSeconds(1), longerGrpc.Remaining(time)); // the route's, without grace
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(longerGrpc.DeadlinePassed(time));
    }
}
