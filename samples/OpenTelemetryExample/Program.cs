// OpenTelemetry with MeshClient: traces and metrics to the console, and to an OTLP collector.
//
//   dotnet run --project samples/OpenTelemetryExample
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 dotnet run --project samples/OpenTelemetryExample
//
// Two instances of an "inventory" backend start on 127.0.0.1; one answers 503 to its first two requests. Six calls
// go through the mesh. For each call you see one Internal span "inventory" from the MeshClient ActivitySource
// (tags mesh.service, mesh.lb.policy, mesh.endpoint.id, mesh.attempts) with one Client span per attempt under it
// (System.Net.Http), and at exit the MeshClient meter's instruments: mesh.client.request.duration,
// mesh.client.attempts, mesh.client.retries, mesh.client.endpoint.ejections, mesh.client.endpoints, ...
//
// The OTLP exporter is added when OTEL_EXPORTER_OTLP_ENDPOINT is set (any collector: the OpenTelemetry Collector,
// Jaeger, the .NET Aspire dashboard), so the example also runs, and exits quickly, with no collector at all.
using MeshClient.Configuration;
using System.Net;
using MeshClient;
using MeshClient.Balancing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

var flakyRequests = 0;
await using var healthy = await StartBackendAsync("inventory-1", _ => false);
await using var flaky = await StartBackendAsync("inventory-2", _ => Interlocked.Increment(ref flakyRequests) <= 2);

var builder = Host.CreateApplicationBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);

// The endpoints are set in code here (AddMesh(Action<MeshOptions>)); appsettings.json works the same way.
builder.Services.AddMesh(mesh =>
{
    mesh.LoadBalancer = LoadBalancerNames.RoundRobin;
    var inventory = new MeshServiceOptions();
    inventory.Endpoints.Add(new MeshEndpointOptions { Address = healthy.Address, Weight = 1, Zone = "zone-a" });
    inventory.Endpoints.Add(new MeshEndpointOptions { Address = flaky.Address, Weight = 1, Zone = "zone-b" });
    mesh.Services["inventory"] = inventory;
});
builder.Services.AddHttpClient("inventory", c => c.BaseAddress = new Uri("http://inventory"));

var otlp = !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"));
builder.Services.AddOpenTelemetry()
    .ConfigureResource(r => r.AddService("opentelemetry-example"))
    .WithTracing(tracing =>
    {
        tracing.AddMeshInstrumentation()            // the "MeshClient" ActivitySource: one span per logical call
            .AddSource("System.Net.Http")           // the runtime's Client span, one per attempt
            .AddConsoleExporter();
        if (otlp)
        {
            tracing.AddOtlpExporter();
        }
    })
    .WithMetrics(metrics =>
    {
        metrics.AddMeshInstrumentation()            // the "MeshClient" Meter
            .AddConsoleExporter();
        if (otlp)
        {
            metrics.AddOtlpExporter();
        }
    });

using (var host = builder.Build())
{
    await host.StartAsync();
    var client = host.Services.GetRequiredService<IHttpClientFactory>().CreateClient("inventory");
    for (var i = 1; i <= 6; i++)
    {
        using var response = await client.GetAsync(new Uri($"/stock/{i}", UriKind.Relative));
        Console.WriteLine($"GET http://inventory/stock/{i} -> {(int)response.StatusCode} from {response.Headers.GetValues("X-Backend").FirstOrDefault()}");
    }

    // Stopping the host flushes the exporters: the metrics are printed below the spans.
    await host.StopAsync();
}

return 0;

static async Task<Backend> StartBackendAsync(string name, Func<HttpContext, bool> fail)
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.Logging.ClearProviders();
    builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
    var app = builder.Build();
    app.MapGet("/stock/{id}", context =>
    {
        context.Response.Headers["X-Backend"] = name;
        if (fail(context))
        {
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return Task.CompletedTask;
        }

        return context.Response.WriteAsync($"{{\"id\":\"{context.Request.RouteValues["id"]}\",\"stock\":7}}");
    });
    await app.StartAsync();
    var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
    return new Backend(app, address);
}

internal sealed record Backend(WebApplication App, string Address) : IAsyncDisposable
{
    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
