using System.Diagnostics;
using System.Diagnostics.Metrics;
using Grpc.Core;
using MeshClient.Model;
using MeshClient.Telemetry;
using MeshClient.Tests.Grpc.Proto;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Xunit.Abstractions;
using StatusCode = Grpc.Core.StatusCode;

namespace MeshClient.Tests.Grpc;

/// <summary>
/// Issue 14, item 2: a gRPC status that arrives in the trailers (after the response headers and messages) counts for
/// the endpoint when the body ends, once; and the mesh span and metrics carry the call's gRPC status.
/// </summary>
[Collection(Telemetry.TracingGroup.Name)]
public sealed class GrpcTrailersTests(ITestOutputHelper output)
{
    /// <summary>The server sends its response headers first, then fails: the status travels in the trailers.</summary>
    private static Func<ServerCallContext, Task> FailAfterHeaders(StatusCode code) => async context =>
    {
        await context.WriteResponseHeadersAsync(new Metadata());
        throw new RpcException(new global::Grpc.Core.Status(code, "late"));
    };

    [Fact]
    public async Task UnavailableInTheTrailers_FailsTheEndpoint_IsNotRetried_AndEveryLeaseEndsOnce()
    {
        await using var servers = await GrpcServers.StartAsync(3);
        var bad = servers[1];
        bad.Behavior = FailAfterHeaders(StatusCode.Unavailable);
        await using var mesh = servers.CreateMesh(new Dictionary<string, string?> { ["Mesh:Services:echo:LoadBalancer"] = "RoundRobin" });
        var client = mesh.Services.GetRequiredService<Echo.EchoClient>();

        var unavailable = 0;
        await Load.RunAsync(300, 3, async i =>
        {
            try
            {
                await client.SayAsync(new EchoRequest { Text = "hi" }, deadline: DateTime.UtcNow.AddSeconds(10));
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable)
            {
                Interlocked.Increment(ref unavailable);
            }
        });

        var table = mesh.Registry.GetTable("echo");
        var badState = table.States.Single(s => s.Id.Contains(bad.Address.Authority, StringComparison.Ordinal));
        output.WriteLine($"calls received: {string.Join(", ", servers.Select(s => $"{s.Name}={s.Count}"))}; UNAVAILABLE to callers: {unavailable}; bad endpoint {badState.Status}");

        // The answer had started (headers without a status): never sent again, each failure reached its caller.
        Assert.Equal(bad.Count, unavailable);

        // Counted against the endpoint when the trailers arrived: 5 in a row eject it (round robin sends every third call).
        Assert.InRange(bad.Count, 5, 8);
        Assert.Equal(EndpointStatus.Ejected, badState.Status);

        // Each lease ended exactly once: nothing left in flight or open.
        Assert.All(table.States, s =>
        {
            Assert.Equal(0, s.InFlight);
            Assert.Equal(0, s.OpenStreams);
        });
    }

    [Fact]
    public async Task TheMeshSpan_CarriesTheGrpcStatus_AndServerErrorsFailTheCallInMetrics()
    {
        await using var servers = await GrpcServers.StartAsync(1);
        var server = servers[0];
        var spans = new List<Activity>();
        await using var mesh = servers.CreateMesh(configure: services =>
            services.AddOpenTelemetry().WithTracing(t => t.AddInMemoryExporter(spans)));
        using var tracer = mesh.Services.GetRequiredService<TracerProvider>();
        using var duration = new MetricCollector<double>(mesh.Services.GetRequiredService<IMeterFactory>(), MeshTelemetry.MeterName, "mesh.client.request.duration");
        var client = mesh.Services.GetRequiredService<Echo.EchoClient>();

        var cases = new (Func<ServerCallContext, Task>? Behavior, StatusCode Code, string Outcome)[]
        {
            (null, StatusCode.OK, "success"),                                                   // OK in the trailers
            (_ => throw new RpcException(new global::Grpc.Core.Status(StatusCode.NotFound, "no")), StatusCode.NotFound, "success"), // trailers-only
            (_ => throw new RpcException(new global::Grpc.Core.Status(StatusCode.Internal, "bug")), StatusCode.Internal, "failure"), // trailers-only
            (FailAfterHeaders(StatusCode.Unavailable), StatusCode.Unavailable, "failure"),      // in the trailers
            (FailAfterHeaders(StatusCode.ResourceExhausted), StatusCode.ResourceExhausted, "success"), // in the trailers, like a 429
        };

        foreach (var (behavior, code, outcome) in cases)
        {
            spans.Clear();
            duration.Clear();
            server.Behavior = behavior;
            var status = StatusCode.OK;
            try
            {
                await client.SayAsync(new EchoRequest { Text = "hi" }, deadline: DateTime.UtcNow.AddSeconds(10));
            }
            catch (RpcException ex)
            {
                status = ex.StatusCode;
            }

            Assert.Equal(code, status);
            await Poll.UntilAsync(() => { tracer.ForceFlush(); return spans.Any(s => s.Source.Name == MeshTelemetry.ActivitySourceName); });
            var span = spans.Single(s => s.Source.Name == MeshTelemetry.ActivitySourceName);
            Assert.Equal((int)code, span.GetTagItem(MeshTags.GrpcStatusCode));
            Assert.Equal(code == StatusCode.OK ? ActivityStatusCode.Unset : ActivityStatusCode.Error, span.Status);
            Assert.Equal(code == StatusCode.OK ? null : GrpcProtocol.Name((int)code), span.GetTagItem(MeshTags.ErrorType));

            await Poll.UntilAsync(() => duration.GetMeasurementSnapshot().Count > 0);
            var measurement = Assert.Single(duration.GetMeasurementSnapshot());
            Assert.Equal(outcome, measurement.Tags[MeshTags.Outcome]);
            output.WriteLine($"{code}: span {span.Status}, outcome {measurement.Tags[MeshTags.Outcome]}, {measurement.Value * 1000:F1} ms");
        }
    }
}
