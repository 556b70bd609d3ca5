using System.Diagnostics;
using System.Net;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Telemetry;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Trace;

namespace MeshClient.Tests.Telemetry;

/// <summary>Spans recorded through OpenTelemetry's in-memory exporter.</summary>
[Collection(TracingGroup.Name)]
public sealed class TracingTests
{
    [Fact]
    public async Task CallThatRetriedOnce_IsOneInternalSpan_WithTwoClientChildren()
    {
        await using var failing = await TestBackend.StartAsync("failing", ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; });
        await using var healthy = await TestBackend.StartAsync("healthy");
        var spans = new List<Activity>();
        var settings = MeshHost.ServiceSettings("catalog", LoadBalancerNames.RoundRobin, (failing, 1), (healthy, 1));
        settings["Mesh:Resilience:ConsecutiveFailures"] = "0";
        await using var host = MeshHost.Create(settings, services =>
            services.AddOpenTelemetry().WithTracing(t => t.AddSource("System.Net.Http").AddInMemoryExporter(spans)));
        using var tracer = host.Services.GetRequiredService<TracerProvider>();
        var client = host.CreateClient();

        // Round robin starts anywhere: call until one call was answered by the failing endpoint first.
        Activity? mesh = null;
        for (var i = 0; i < 4 && mesh is null; i++)
        {
            spans.Clear();
            using var response = await client.GetAsync("http://catalog/items/42");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            tracer.ForceFlush();
            mesh = spans.SingleOrDefault(s => s.Source.Name == MeshTelemetry.ActivitySourceName && (int)s.GetTagItem(MeshTags.Attempts)! == 2);
        }

        Assert.NotNull(mesh);
        Assert.Equal(ActivityKind.Internal, mesh.Kind);
        Assert.Equal("catalog", mesh.DisplayName);
        Assert.Equal("catalog", mesh.GetTagItem(MeshTags.Service));
        Assert.Equal("RoundRobin", mesh.GetTagItem(MeshTags.Policy));
        Assert.Equal(healthy.Address.GetLeftPart(UriPartial.Path), mesh.GetTagItem(MeshTags.EndpointId));
        Assert.NotEqual(ActivityStatusCode.Error, mesh.Status);
        Assert.Contains(mesh.Events, e => e.Name == "mesh.retry" && e.Tags.Any(t => t.Key == MeshTags.RetryReason && (string?)t.Value == "status_5xx"));

        // Never a second Client span: exactly the two System.Net.Http attempts, children of the mesh span.
        var clients = spans.Where(s => s.Kind == ActivityKind.Client).ToList();
        Assert.Equal(2, clients.Count);
        Assert.All(clients, c => Assert.Equal("System.Net.Http", c.Source.Name));
        Assert.All(clients, c => Assert.Equal(mesh.SpanId, c.ParentSpanId));
        Assert.All(clients, c => Assert.Equal(mesh.TraceId, c.TraceId));
        Assert.Equal([failing.Port, healthy.Port], clients.OrderBy(c => c.StartTimeUtc).Select(c => (int)c.GetTagItem("server.port")!));
        Assert.DoesNotContain(spans, s => s.Source.Name == MeshTelemetry.ActivitySourceName && s.Kind == ActivityKind.Client);
    }

    [Fact]
    public async Task FailedCall_SetsErrorStatusAndErrorType()
    {
        await using var failing = await TestBackend.StartAsync("failing", ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; });
        var spans = new List<Activity>();
        var settings = MeshHost.ServiceSettings("catalog", null, (failing, 1));
        settings["Mesh:Resilience:MaxRetries"] = "0";
        await using var host = MeshHost.Create(settings, services => services.AddOpenTelemetry().WithTracing(t => t.AddInMemoryExporter(spans)));
        using var tracer = host.Services.GetRequiredService<TracerProvider>();

        using var response = await host.CreateClient().GetAsync("http://catalog/");
        tracer.ForceFlush();

        var mesh = Assert.Single(spans, s => s.Source.Name == MeshTelemetry.ActivitySourceName);
        Assert.Equal(ActivityStatusCode.Error, mesh.Status);
        Assert.Equal("503", mesh.GetTagItem(MeshTags.ErrorType));
        Assert.Equal(1, mesh.GetTagItem(MeshTags.Attempts));
    }

    [Fact]
    public async Task TraceContext_FlowsAcrossThreeServices_ThroughTheMesh()
    {
        var spans = new List<Activity>();
        using var tracer = Sdk.CreateTracerProviderBuilder()
            .AddMeshInstrumentation()
            .AddSource("System.Net.Http", "Microsoft.AspNetCore", "test")
            .AddInMemoryExporter(spans)
            .Build();
        string? traceparentAtC = null;

        await using var c = await StartServiceAsync("c", new Dictionary<string, string?>(), app => app.MapGet("/c", (HttpContext ctx) =>
        {
            traceparentAtC = ctx.Request.Headers["traceparent"];
            return "from c";
        }));
        await using var b = await StartServiceAsync("b", new() { ["Mesh:Services:svc-c:Endpoints:0:Address"] = c.Address }, app =>
            app.MapGet("/b", async (IHttpClientFactory factory) => await factory.CreateClient().GetStringAsync("http://svc-c/c")));
        await using var a = await StartServiceAsync("a", new() { ["Mesh:Services:svc-b:Endpoints:0:Address"] = b.Address }, app =>
            app.MapGet("/a", async (IHttpClientFactory factory) => await factory.CreateClient().GetStringAsync("http://svc-b/b")));

        using var source = new ActivitySource("test");
        using var plain = new HttpClient();
        string answer;
        ActivityTraceId traceId;
        using (var root = source.StartActivity("root"))
        {
            Assert.NotNull(root);
            traceId = root.TraceId;
            answer = await plain.GetStringAsync(a.Address + "a");
        }

        tracer.ForceFlush();
        Assert.Equal("from c", answer);
        var trace = spans.Where(s => s.TraceId == traceId).ToList();
        Activity ChildOf(Activity parent, ActivityKind kind) => Assert.Single(trace, s => s.ParentSpanId == parent.SpanId && s.Kind == kind);

        // root -> client to A -> server A -> mesh "svc-b" -> client to B -> server B -> mesh "svc-c" -> client to C -> server C
        var rootSpan = Assert.Single(trace, s => s.Source.Name == "test");
        var serverA = ChildOf(ChildOf(rootSpan, ActivityKind.Client), ActivityKind.Server);
        var meshB = ChildOf(serverA, ActivityKind.Internal);
        var serverB = ChildOf(ChildOf(meshB, ActivityKind.Client), ActivityKind.Server);
        var meshC = ChildOf(serverB, ActivityKind.Internal);
        var clientToC = ChildOf(meshC, ActivityKind.Client);
        ChildOf(clientToC, ActivityKind.Server);

        Assert.Equal(("svc-b", MeshTelemetry.ActivitySourceName), (meshB.DisplayName, meshB.Source.Name));
        Assert.Equal(("svc-c", MeshTelemetry.ActivitySourceName), (meshC.DisplayName, meshC.Source.Name));
        Assert.Equal(c.Port, (int)clientToC.GetTagItem("server.port")!);
        Assert.Equal($"00-{traceId}-{clientToC.SpanId}-01", traceparentAtC);
    }

    private static async Task<RunningService> StartServiceAsync(string name, Dictionary<string, string?> settings, Action<WebApplication> map)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddMesh();
        var app = builder.Build();
        map(app);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new RunningService(app, address.TrimEnd('/') + "/");
    }

    private sealed class RunningService(WebApplication app, string address) : IAsyncDisposable
    {
        public string Address { get; } = address;

        public int Port => new Uri(Address).Port;

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}

/// <summary>Tracing tests listen to process-wide activity sources: they run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TracingGroup
{
    public const string Name = "Tracing";
}
