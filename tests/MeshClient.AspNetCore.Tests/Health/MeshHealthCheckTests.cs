using System.Net;
using MeshClient.AspNetCore.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace MeshClient.AspNetCore.Tests.Health;

public sealed class MeshHealthCheckTests
{
    [Fact]
    public async Task EveryEndpointHealthy_IsHealthy()
    {
        await using var app = await StartAsync();
        await app.CallAsync(12);

        var entry = await CheckAsync(app);

        Assert.Equal(HealthStatus.Healthy, entry.Status);
        Assert.Empty(entry.Data);
    }

    [Fact]
    public async Task AnEjectedEndpoint_IsDegraded_NamingIt()
    {
        await using var app = await StartAsync();
        app.Backends[1].Failing = true;
        await app.CallAsync(40);

        var entry = await CheckAsync(app);

        Assert.Equal(HealthStatus.Degraded, entry.Status);
        var failing = app.Backends[1].Address.ToString().TrimEnd('/');
        Assert.Contains("catalog", entry.Description, StringComparison.Ordinal);
        Assert.Contains(failing, entry.Description, StringComparison.Ordinal);
        Assert.Contains("ejected", entry.Description, StringComparison.Ordinal);
        Assert.Contains(failing, (string)entry.Data["catalog"], StringComparison.Ordinal);
        Assert.DoesNotContain(app.Backends[0].Address.ToString().TrimEnd('/'), (string)entry.Data["catalog"], StringComparison.Ordinal);

        // Degraded still answers 200 on the health endpoint (the default mapping of ASP.NET Core).
        using var http = new HttpClient { BaseAddress = app.Address };
        using var response = await http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Degraded", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task NoHealthyEndpoint_IsUnhealthy_NamingTheService()
    {
        await using var app = await StartAsync();
        foreach (var backend in app.Backends)
        {
            backend.Failing = true;
        }

        await app.CallAsync(60);

        var entry = await CheckAsync(app);

        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        Assert.Equal("No healthy endpoint in catalog.", entry.Description);
        Assert.StartsWith("no healthy endpoint: ", (string)entry.Data["catalog"], StringComparison.Ordinal);
        Assert.All(app.Backends, b => Assert.Contains(b.Address.ToString().TrimEnd('/'), (string)entry.Data["catalog"], StringComparison.Ordinal));

        using var http = new HttpClient { BaseAddress = app.Address };
        using var response = await http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("Unhealthy", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ARoutedServiceWithoutEndpoints_IsJudgedThroughItsBackends()
    {
        await using var app = await MeshApp.StartAsync(2, s =>
        {
            MeshApp.ShopRoutes(s);
            s.AddHealthChecks().AddMesh();
        });
        for (var i = 0; i < 5; i++)
        {
            (await app.MeshClient.GetAsync("http://shop/")).EnsureSuccessStatusCode();
        }

        var entry = await CheckAsync(app);

        Assert.Equal(HealthStatus.Healthy, entry.Status); // shop has no endpoints of its own: not "no endpoint"
        Assert.Empty(entry.Data);
    }

    [Fact]
    public async Task FailureStatus_ReplacesUnhealthy()
    {
        await using var app = await MeshApp.StartAsync(1, s => s.AddHealthChecks().AddMesh("mesh", HealthStatus.Degraded, ["ready"]));
        app.Backends[0].Failing = true;
        await app.CallAsync(10);

        var report = await app.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        var entry = report.Entries["mesh"];

        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Equal(["ready"], entry.Tags);
    }

    private static Task<MeshApp> StartAsync() =>
        MeshApp.StartAsync(3, s => s.AddHealthChecks().AddMesh(), a => a.MapHealthChecks("/health"));

    private static async Task<HealthReportEntry> CheckAsync(MeshApp app)
    {
        var report = await app.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        return report.Entries["mesh"];
    }
}
