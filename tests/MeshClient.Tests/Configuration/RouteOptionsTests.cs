using System.Text;
using MeshClient.Configuration;
using MeshClient.Routing;
using MeshClient.Tests.Infrastructure;
using MeshClient.Tests.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace MeshClient.Tests.Configuration;

/// <summary>
/// <c>Mesh:Services:{name}:Routes</c> binds as the issue writes it; invalid routes fail at start-up with a message
/// naming the key, unknown keys under a route are refused, and an invalid reload keeps the routes in force.
/// </summary>
public sealed class RouteOptionsTests
{
    private const string IssueJson = """
        { "Mesh": { "Services": {
          "catalog": { "Routes": [
            { "Name": "testers", "Match": { "Headers": { "x-canary": "always" } }, "Backends": [ { "Service": "catalog-v2" } ] },
            { "Name": "split", "Backends": [ { "Service": "catalog-v1", "Weight": 90 }, { "Service": "catalog-v2", "Weight": 10 } ], "Timeout": "00:00:02" } ] },
          "catalog-v1": { "Endpoints": [ { "Address": "http://10.0.0.1:8080" } ] },
          "catalog-v2": { "Endpoints": [ { "Address": "http://10.0.0.2:8080" } ] } } } }
        """;

    [Fact]
    public async Task TheIssuesJson_Binds_WithDefaults_AndCompiles()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(IssueJson)));
        builder.Services.AddMesh();
        using var host = builder.Build();
        await host.StartAsync();

        var routes = host.Services.GetRequiredService<IOptions<MeshOptions>>().Value.Services["catalog"].Routes;
        Assert.Equal(["testers", "split"], routes.Select(r => r.Name));
        Assert.Equal("always", routes[0].Match!.Headers["X-Canary"]);
        Assert.Null(routes[0].Match!.PathPrefix);
        Assert.Equal(1, routes[0].Backends.Single().Weight); // the default
        Assert.Null(routes[1].Match);
        Assert.Equal([90, 10], routes[1].Backends.Select(b => b.Weight));
        Assert.Equal(TimeSpan.FromSeconds(2), routes[1].Timeout);
        Assert.Null(routes[0].Timeout);

        var table = host.Services.GetRequiredService<MeshRouter>().Tables["catalog"];
        Assert.Equal(["testers", "split"], table.Routes.Select(r => r.Name));
        Assert.Equal("x-canary: always", table.Routes[0].Match.Describe());
        Assert.Same(RouteMatch.All, table.Routes[1].Match);
        await host.StopAsync();
    }

    [Theory]
    [InlineData("Mesh:Services:catalog:Routes:1:Backends:0:Weight", "-1", "Mesh:Services:catalog:Routes:1:Backends:0:Weight must be between 0 and 1000000, was -1.")]
    [InlineData("Mesh:Services:catalog:Routes:1:Backends:0:Weight", "1000001", "Mesh:Services:catalog:Routes:1:Backends:0:Weight must be between 0 and 1000000, was 1000001.")]
    [InlineData("Mesh:Services:catalog:Routes:0:Backends:0:Weight", "0", "Mesh:Services:catalog:Routes:0:Backends: the weights are all 0; at least one backend must have a positive Weight.")]
    [InlineData("Mesh:Services:catalog:Routes:1:Backends:0:Service", "", "Mesh:Services:catalog:Routes:1:Backends:0:Service is required")]
    [InlineData("Mesh:Services:catalog:Routes:1:Backends:0:Service", "http://catalog-v1", "Mesh:Services:catalog:Routes:1:Backends:0:Service 'http://catalog-v1' must be a mesh service name")]
    [InlineData("Mesh:Services:catalog:Routes:1:Backends:0:Service", "10.0.0.7", "Mesh:Services:catalog:Routes:1:Backends:0:Service '10.0.0.7' must be a mesh service name")]
    [InlineData("Mesh:Services:catalog:Routes:1:Backends:0:Service", "localhost", "not an IP address or localhost")]
    [InlineData("Mesh:Services:catalog:Routes:1:Backends:0:Service", "catalog-v2", "Mesh:Services:catalog:Routes:1:Backends:1:Service 'catalog-v2' is already Backends:0 of this route; list it once with the sum of the weights.")]
    [InlineData("Mesh:Services:catalog:Routes:1:Backends:0:Service", "orders", "Mesh:Services:catalog:Routes:1:Backends:0:Service 'orders' has routes of its own (Mesh:Services:orders:Routes): a route's backend must be a service without routes (routes do not chain)")]
    [InlineData("Mesh:Services:catalog:Routes:0:Match:PathPrefix", "api", "Mesh:Services:catalog:Routes:0:Match:PathPrefix 'api' must be a path that begins with '/'")]
    [InlineData("Mesh:Services:catalog:Routes:0:Match:Path", "items?x=1", "Mesh:Services:catalog:Routes:0:Match:Path 'items?x=1' must be a path that begins with '/'")]
    [InlineData("Mesh:Services:catalog:Routes:0:Match:Method", "GET POST", "Mesh:Services:catalog:Routes:0:Match:Method 'GET POST' must be an HTTP method")]
    [InlineData("Mesh:Services:catalog:Routes:0:Match:Headers:x canary", "always", "Mesh:Services:catalog:Routes:0:Match:Headers: 'x canary' is not a header name.")]
    [InlineData("Mesh:Services:catalog:Routes:1:Timeout", "00:00:00.001", "Mesh:Services:catalog:Routes:1:Timeout must be between 00:00:00.0100000 and 01:00:00, was 00:00:00.0010000.")]
    [InlineData("Mesh:Services:catalog:Routes:1:Name", "testers", "Mesh:Services:catalog:Routes:1:Name 'testers' is the name of Routes:0 too; route names are unique within a service.")]
    [InlineData("Mesh:Services:catalog:Routes:0:Matches:Path", "/x", "Mesh:Services:catalog:Routes:0:Matches is not a configuration key; did you mean Match?")]
    [InlineData("Mesh:Services:catalog:Routes:1:Backends:0:Wieght", "3", "Mesh:Services:catalog:Routes:1:Backends:0:Wieght is not a configuration key; did you mean Weight?")]
    public async Task InvalidRoutes_FailAtStartUp_NamingTheKey(string key, string value, string expected)
    {
        var settings = Valid();
        settings[key] = value;
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddMesh();
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARouteWithoutBackends_AndAPathOutsideItsPrefix_AreRefused()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Routes:0:Name"] = "empty",
            ["Mesh:Services:catalog:Routes:0:Match:Path"] = "/apis",
            ["Mesh:Services:catalog:Routes:0:Match:PathPrefix"] = "/api",
        };
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddMesh();
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("Mesh:Services:catalog:Routes:0:Backends must name at least one service (Backends:0:Service).", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Mesh:Services:catalog:Routes:0:Match: Path '/apis' is not under PathPrefix '/api', so the route would never match; set one of them.", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARouteToItself_UsesItsOwnEndpoints_AndABackendNotDeclaredIsAccepted()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Endpoints:0:Address"] = "http://10.0.0.1:8080",
            ["Mesh:Services:catalog:Routes:0:Backends:0:Service"] = "catalog",
            ["Mesh:Services:catalog:Routes:0:Backends:0:Weight"] = "95",
            ["Mesh:Services:catalog:Routes:0:Backends:1:Service"] = "catalog-next", // Consul or Kubernetes may know it
            ["Mesh:Services:catalog:Routes:0:Backends:1:Weight"] = "5",
        };
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddMesh();
        using var host = builder.Build();
        await host.StartAsync();
        Assert.Equal(["catalog", "catalog-next"], host.Services.GetRequiredService<MeshRouter>().Tables["catalog"].Routes[0].Backends.Select(b => b.Service));
        await host.StopAsync();
    }

    [Fact]
    public async Task AnInvalidReload_IsRefused_AndTheRoutesInForceKeepServing()
    {
        await using var mesh = await RoutedMesh.StartAsync(1, 1, RoutedMesh.Split(0, 1));
        (await mesh.Client.GetAsync("http://catalog/")).EnsureSuccessStatusCode();

        var invalid = new Dictionary<string, string?>(mesh.Settings, StringComparer.OrdinalIgnoreCase)
        {
            ["Mesh:Services:catalog:Routes:0:Backends:1:Weight"] = "-5",
        };
        mesh.Host.Configuration.Replace(invalid);

        var refusal = Assert.Single(mesh.Events(11));
        Assert.Contains("Mesh:Services:catalog:Routes:0:Backends:1:Weight must be between 0 and 1000000, was -5.", refusal.Message, StringComparison.Ordinal);
        Assert.Equal(0, await mesh.RunAsync(50, callers: 4));
        Assert.Equal((0, 51), mesh.Counts);
    }

    private static Dictionary<string, string?> Valid() => new()
    {
        ["Mesh:Services:catalog-v1:Endpoints:0:Address"] = "http://10.0.0.1:8080",
        ["Mesh:Services:catalog-v2:Endpoints:0:Address"] = "http://10.0.0.2:8080",
        ["Mesh:Services:orders:Routes:0:Backends:0:Service"] = "catalog-v1",
        ["Mesh:Services:catalog:Routes:0:Name"] = "testers",
        ["Mesh:Services:catalog:Routes:0:Match:Headers:x-canary"] = "always",
        ["Mesh:Services:catalog:Routes:0:Backends:0:Service"] = "catalog-v2",
        ["Mesh:Services:catalog:Routes:1:Name"] = "split",
        ["Mesh:Services:catalog:Routes:1:Backends:0:Service"] = "catalog-v1",
        ["Mesh:Services:catalog:Routes:1:Backends:0:Weight"] = "90",
        ["Mesh:Services:catalog:Routes:1:Backends:1:Service"] = "catalog-v2",
        ["Mesh:Services:catalog:Routes:1:Backends:1:Weight"] = "10",
    };
}
