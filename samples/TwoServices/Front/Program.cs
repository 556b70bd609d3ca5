// The "front" service: the Program.cs of DESIGN.md. AddMesh() makes the "catalog" client discover the catalog
// instances listed in appsettings.json (Mesh:Services:catalog:Endpoints), balance between them by weight and
// latency, eject a failing one, retry elsewhere, and trace every call.
//
//   dotnet run --project samples/TwoServices/Catalog -- --urls http://127.0.0.1:5001
//   dotnet run --project samples/TwoServices/Catalog -- --urls http://127.0.0.1:5002
//   dotnet run --project samples/TwoServices/Front   -- --urls http://127.0.0.1:5000
//   curl http://127.0.0.1:5000/items/42            (three times out of four from the weight-3 instance)
//   curl http://127.0.0.1:5000/mesh                (what the mesh knows: endpoints, state, load)
using MeshClient.Balancing;
using OpenTelemetry.Trace;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddMesh();                       // binds the "Mesh" configuration section
builder.Services.AddHttpClient("catalog", c => c.BaseAddress = new Uri("http://catalog"));
builder.Services.AddOpenTelemetry().WithTracing(t => t.AddMeshInstrumentation().AddOtlpExporter());

var app = builder.Build();

// anywhere: factory.CreateClient("catalog").GetAsync("/items/42")  -> one healthy catalog instance
app.MapGet("/items/{id:int}", async (int id, IHttpClientFactory factory, CancellationToken cancellationToken) =>
{
    using var response = await factory.CreateClient("catalog").GetAsync($"/items/{id}", cancellationToken);
    var body = await response.Content.ReadAsStringAsync(cancellationToken);
    return Results.Content(body, "application/json", statusCode: (int)response.StatusCode);
});

// A status page: the endpoints of every service the mesh has resolved, their state and live load.
app.MapGet("/mesh", (IMeshStatus status) => Results.Json(status.GetServices()));

app.Run();
