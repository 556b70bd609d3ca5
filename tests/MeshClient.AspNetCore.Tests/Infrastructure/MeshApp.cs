using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshClient.AspNetCore.Tests.Infrastructure;

/// <summary>
/// An application on 127.0.0.1 (port chosen by the OS) with the mesh over real backends: service <c>catalog</c>,
/// round robin over <see cref="Backends"/>, five failures in a row eject an endpoint for 30 s. The test maps what it
/// needs (the status page, health checks) in <c>map</c>.
/// </summary>
public sealed class MeshApp : IAsyncDisposable
{
    public const string Service = "catalog";

    private readonly WebApplication _app;

    private MeshApp(WebApplication app, IReadOnlyList<TestBackend> backends, Uri address)
    {
        _app = app;
        Backends = backends;
        Address = address;
    }

    public IReadOnlyList<TestBackend> Backends { get; }

    /// <summary>Gets the address of the application (its status page and health checks).</summary>
    public Uri Address { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>Gets a client through the mesh (what the application itself would use to call <c>catalog</c>).</summary>
    public HttpClient MeshClient => Services.GetRequiredService<IHttpClientFactory>().CreateClient("test");

    /// <summary>
    /// Adds a routed service <c>shop</c>: route <c>split</c> sends 90% to <c>catalog</c> and 10% to <c>catalog-v2</c>,
    /// which no provider knows (so it takes no share), with a 5 s timeout.
    /// </summary>
    public static void ShopRoutes(IServiceCollection services) =>
        services.Configure<MeshClient.Configuration.MeshOptions>(o => o.Services["shop"] = new MeshClient.Configuration.MeshServiceOptions
        {
            Routes =
            {
                new MeshClient.Configuration.MeshRouteOptions
                {
                    Name = "split",
                    Timeout = TimeSpan.FromSeconds(5),
                    Backends = { new() { Service = Service, Weight = 90 }, new() { Service = "catalog-v2", Weight = 10 } },
                },
            },
        });

    public static async Task<MeshApp> StartAsync(int backendCount, Action<IServiceCollection>? configure = null, Action<WebApplication>? map = null)
    {
        var backends = new List<TestBackend>();
        for (var i = 0; i < backendCount; i++)
        {
            backends.Add(await TestBackend.StartAsync("b" + i));
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        var settings = new Dictionary<string, string?>
        {
            [$"Mesh:Services:{Service}:LoadBalancer"] = "RoundRobin",
            ["Mesh:Resilience:ConsecutiveFailures"] = "5",
            ["Mesh:Resilience:BaseEjectionTime"] = "00:00:30",
            ["Mesh:Resilience:MaxRetries"] = "0",
            ["Mesh:Resilience:MaxEjectionPercent"] = "100",
        };
        for (var i = 0; i < backends.Count; i++)
        {
            settings[$"Mesh:Services:{Service}:Endpoints:{i}:Address"] = backends[i].Address.ToString();
            settings[$"Mesh:Services:{Service}:Endpoints:{i}:Weight"] = (i + 1).ToString(CultureInfo.InvariantCulture);
        }

        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddMesh();
        configure?.Invoke(builder.Services);
        var app = builder.Build();
        map?.Invoke(app);
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return new MeshApp(app, backends, address);
    }

    /// <summary>Sends <paramref name="count"/> calls to <c>catalog</c> through the mesh; failures are expected and ignored.</summary>
    public async Task CallAsync(int count)
    {
        var client = MeshClient;
        for (var i = 0; i < count; i++)
        {
            try
            {
                (await client.GetAsync($"http://{Service}/")).Dispose();
            }
            catch (HttpRequestException)
            {
                // no healthy endpoint, or every one failing: what the test is about
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        foreach (var backend in Backends)
        {
            await backend.DisposeAsync();
        }
    }
}
