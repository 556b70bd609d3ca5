// The "catalog" service: a plain ASP.NET app that knows nothing of the mesh. Run it twice, on the two addresses
// the front service lists in its appsettings.json:
//
//   dotnet run --project samples/TwoServices/Catalog -- --urls http://127.0.0.1:5001
//   dotnet run --project samples/TwoServices/Catalog -- --urls http://127.0.0.1:5002
var builder = WebApplication.CreateBuilder(args);
var app = builder.Build();

// Which instance answered (by its port), so the front service's callers can see the balancing at work.
app.MapGet("/items/{id:int}", (int id, HttpContext context) =>
    Results.Json(new Item(id, $"Item {id}", $"catalog:{context.Connection.LocalPort}")));
app.MapGet("/health", () => Results.Ok());

app.Run();

internal sealed record Item(int Id, string Name, string ServedBy);
