// Discovery and self-registration through Consul. One program, two roles:
//
//   catalog: registers itself in Consul on start (an HTTP check on /health), deregisters on graceful stop.
//   front:   calls http://catalog through the mesh, which discovers the catalog instances from Consul with a
//            blocking query: a new instance takes traffic within milliseconds, a stopped one leaves at once.
//
//   consul agent -dev                                                    (a local agent on 127.0.0.1:8500)
//   dotnet run --project samples/ConsulExample -- --role catalog --urls http://127.0.0.1:5001
//   dotnet run --project samples/ConsulExample -- --role catalog --urls http://127.0.0.1:5002
//   dotnet run --project samples/ConsulExample -- --role front   --urls http://127.0.0.1:5000
//   curl http://127.0.0.1:5000/items/42        (served by either catalog instance)
//   curl http://127.0.0.1:5000/mesh            (what the mesh knows)
//
// The agent's address, an ACL token and TLS settings go in appsettings.json (Mesh:Consul) or the environment
// (Mesh__Consul__Address, Mesh__Consul__Token).
using MeshClient.Status;
using MeshClient.Balancing;

var builder = WebApplication.CreateBuilder(args);
var role = builder.Configuration["role"] ?? "front";
var mesh = builder.Services.AddMesh();
if (role == "catalog")
{
    mesh.AddConsul(o =>
    {
        o.Registration.Enabled = true;
        o.Registration.ServiceName = "catalog";
        o.Registration.HealthCheckPath = "/health";
        o.Registration.DeregisterCriticalServiceAfter = TimeSpan.FromMinutes(1);
    });
}
else
{
    mesh.AddConsul();
    builder.Services.AddHttpClient("catalog", c => c.BaseAddress = new Uri("http://catalog"));
}

var app = builder.Build();
app.MapGet("/health", () => "ok");
if (role == "catalog")
{
    app.MapGet("/items/{id:int}", (int id, HttpContext context) =>
        Results.Json(new { id, name = $"item {id}", servedBy = $"catalog:{context.Connection.LocalPort}" }));
}
else
{
    app.MapGet("/items/{id:int}", async (int id, IHttpClientFactory factory, CancellationToken cancellationToken) =>
    {
        using var response = await factory.CreateClient("catalog").GetAsync($"/items/{id}", cancellationToken);
        return Results.Content(await response.Content.ReadAsStringAsync(cancellationToken), "application/json", statusCode: (int)response.StatusCode);
    });
    app.MapGet("/mesh", (IMeshStatus status) => Results.Json(status.GetServices()));
}

app.Run();
