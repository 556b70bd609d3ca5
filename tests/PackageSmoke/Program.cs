// PackageSmoke: the MeshClient package, installed from the local feed, makes one mesh call to a real backend; the
// MeshClient.AspNetCore package serves the status JSON and reports the health of that service.
// Exit code 0 when all of it worked, 1 otherwise. Everything stays on 127.0.0.1.
using MeshClient.Configuration;
using MeshClient.Status;
using System.Net;
using System.Reflection;
using MeshClient;
using MeshClient.Balancing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
var assembly = typeof(IMeshBuilder).Assembly;
Console.WriteLine($"MeshClient {assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion} from {assembly.Location}");

// A real backend: Kestrel on 127.0.0.1, port chosen by the OS.
var backendBuilder = WebApplication.CreateSlimBuilder();
backendBuilder.Logging.ClearProviders();
backendBuilder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
await using var backend = backendBuilder.Build();
backend.MapGet("/ping", context =>
{
    context.Response.Headers["X-Backend"] = "smoke-backend";
    return context.Response.WriteAsync("pong", context.RequestAborted);
});
await backend.StartAsync(timeout.Token);
var address = backend.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
Console.WriteLine($"backend listening on {address}");

// The caller: the service name "smoke" exists only in the mesh configuration, set in code.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], ContentRootPath = AppContext.BaseDirectory });
builder.Logging.SetMinimumLevel(LogLevel.Warning);
var services = builder.Services;
services.AddMesh(mesh =>
{
    var smoke = new MeshServiceOptions { LoadBalancer = LoadBalancerNames.RoundRobin };
    smoke.Endpoints.Add(new MeshEndpointOptions { Address = address, Weight = 2 });
    mesh.Services["smoke"] = smoke;
});
services.AddHttpClient("smoke", c => c.BaseAddress = new Uri("http://smoke"));
using var host = builder.Build();
await host.StartAsync(timeout.Token); // validates the mesh options
var provider = host.Services;

var failures = new List<string>();
var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("smoke");
using (var response = await client.GetAsync(new Uri("/ping", UriKind.Relative), timeout.Token))
{
    var body = await response.Content.ReadAsStringAsync(timeout.Token);
    Console.WriteLine($"GET http://smoke/ping -> {(int)response.StatusCode} {body}");
    if (response.StatusCode != HttpStatusCode.OK || body != "pong")
    {
        failures.Add($"expected 200 pong, got {(int)response.StatusCode} {body}");
    }
}

// The mesh, not DNS, answered for "smoke": its status shows the endpoint and the attempt.
var service = provider.GetRequiredService<IMeshStatus>().GetServices().SingleOrDefault(s => s.Name == "smoke");
var endpoint = service?.Endpoints.SingleOrDefault();
Console.WriteLine($"mesh status: service={service?.Name} policy={service?.LoadBalancer} endpoint={endpoint?.Address} weight={endpoint?.Weight} state={endpoint?.State} attempts={endpoint?.Attempts}");
if (service is null || endpoint is null || endpoint.Attempts < 1 || endpoint.Weight != 2 || endpoint.State != "healthy")
{
    failures.Add("IMeshStatus does not show the call on the configured endpoint");
}

// A single-label name no provider knows fails fast with a MeshException.
try
{
    using var unknown = await client.GetAsync(new Uri("http://nowhere/ping"), timeout.Token);
    failures.Add($"expected a MeshException for an unknown service, got {(int)unknown.StatusCode}");
}
catch (MeshException e)
{
    Console.WriteLine($"unknown service -> {e.GetType().Name}: {e.Message}");
}

// MeshClient.AspNetCore: the status page's JSON and the health check, on an application with the same mesh.
var statusBuilder = WebApplication.CreateSlimBuilder();
statusBuilder.Logging.ClearProviders();
statusBuilder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
statusBuilder.Services.AddMesh(mesh =>
{
    var smoke = new MeshServiceOptions { LoadBalancer = LoadBalancerNames.RoundRobin };
    smoke.Endpoints.Add(new MeshEndpointOptions { Address = address, Weight = 2 });
    mesh.Services["smoke"] = smoke;
});
statusBuilder.Services.AddHealthChecks().AddMesh();
await using var statusApp = statusBuilder.Build();
statusApp.MapMeshStatus("/mesh");
await statusApp.StartAsync(timeout.Token);
var statusAddress = statusApp.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
using (var call = await statusApp.Services.GetRequiredService<IHttpClientFactory>().CreateClient().GetAsync(new Uri("http://smoke/ping"), timeout.Token))
{
    call.EnsureSuccessStatusCode();
}

using (var http = new HttpClient())
using (var request = new HttpRequestMessage(HttpMethod.Get, statusAddress + "/mesh"))
{
    request.Headers.Accept.ParseAdd("application/json");
    using var response = await http.SendAsync(request, timeout.Token);
    var json = await response.Content.ReadAsStringAsync(timeout.Token);
    Console.WriteLine($"GET /mesh (JSON) -> {(int)response.StatusCode} {json.Length} characters");
    if (response.StatusCode != HttpStatusCode.OK || !json.Contains("\"version\":1", StringComparison.Ordinal) || !json.Contains("\"name\":\"smoke\"", StringComparison.Ordinal))
    {
        failures.Add($"the status JSON does not show version 1 and the service smoke: {json}");
    }
}

var health = await statusApp.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(timeout.Token);
Console.WriteLine($"health check -> {health.Status}");
if (health.Status != HealthStatus.Healthy || !health.Entries.ContainsKey("mesh"))
{
    failures.Add($"expected the mesh health check Healthy, got {health.Status}");
}

await statusApp.StopAsync(timeout.Token);

foreach (var failure in failures)
{
    Console.Error.WriteLine($"FAIL: {failure}");
}

await host.StopAsync(timeout.Token);
Console.WriteLine(failures.Count == 0 ? "package smoke test: passed" : "package smoke test: FAILED");
return failures.Count == 0 ? 0 : 1;
