// The "front" service: the Program.cs of DESIGN.md. AddMesh() makes the "catalog" client discover the catalog
// instances listed in appsettings.json (Mesh:Services:catalog:Endpoints), balance between them by weight and
// latency, eject a failing one, retry elsewhere, and trace every call.
//
//   dotnet run --project samples/TwoServices/Catalog -- --urls http://127.0.0.1:5001
//   dotnet run --project samples/TwoServices/Catalog -- --urls http://127.0.0.1:5002
//   dotnet run --project samples/TwoServices/Front   -- --urls http://127.0.0.1:5000
//   curl http://127.0.0.1:5000/items/42            (three times out of four from the weight-3 instance)
//   open http://127.0.0.1:5000/mesh in a browser    (what the mesh knows: endpoints, state, load, live)
//   curl -H 'Accept: application/json' http://127.0.0.1:5000/mesh
//   curl http://127.0.0.1:5000/health               (Degraded while a catalog instance is ejected)
using OpenTelemetry.Trace;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddMesh();                       // binds the "Mesh" configuration section
builder.Services.AddHttpClient("catalog", c => c.BaseAddress = new Uri("http://catalog"));
builder.Services.AddHealthChecks().AddMesh();     // MeshClient.AspNetCore
builder.Services.AddOpenTelemetry().WithTracing(t => t.AddMeshInstrumentation().AddOtlpExporter());

var app = builder.Build();

// anywhere: factory.CreateClient("catalog").GetAsync("/items/42")  -> one healthy catalog instance
app.MapGet("/items/{id:int}", async (int id, IHttpClientFactory factory, CancellationToken cancellationToken) =>
{
    using var response = await factory.CreateClient("catalog").GetAsync($"/items/{id}", cancellationToken);
    var body = await response.Content.ReadAsStringAsync(cancellationToken);
    return Results.Content(body, "application/json", statusCode: (int)response.StatusCode);
});

// The status page (MeshClient.AspNetCore): the endpoints of every service the mesh has resolved, their state and
// live load. It shows internal addresses: this sample answers it only on the loopback host names; a real service
// protects it with .RequireAuthorization() or serves it on an internal port.
app.MapMeshStatus("/mesh").RequireHost("127.0.0.1", "localhost");
app.MapHealthChecks("/health");

app.Run();
