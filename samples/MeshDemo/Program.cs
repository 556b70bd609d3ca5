// MeshDemo: a service mesh at work in one process, with no server to install.
//
// Four instances of a small "catalog" backend start on 127.0.0.1 (ports chosen by the OS): two fast ones with
// different weights, a slow one, and a flaky one that answers 503 for a while and then recovers. A caller sends
// GET http://catalog/work through a named HttpClient made mesh-aware by AddMesh(); the mesh discovers the four
// endpoints from configuration, balances by weight and latency, ejects the flaky one and retries elsewhere.
// --kubernetes discovers them instead from EndpointSlices served by the tests' Kubernetes API stand-in, started here;
// --status-port serves MeshClient.AspNetCore's status page on 127.0.0.1 while the demo runs. --canary PERCENT starts two
// more instances as the service "catalog-v2" and splits catalog's calls between catalog (its own four) and catalog-v2
// with a route (Mesh:Services:catalog:Routes): the table shows each backend's share.
//
//   dotnet run --project samples/MeshDemo                      # 20 seconds, live table
//   dotnet run --project samples/MeshDemo -- --duration 1m --policy RoundRobin
//   dotnet run --project samples/MeshDemo -- --duration 5s | cat   # plain lines (CI, pipes)
//   dotnet run --project samples/MeshDemo -- --consul http://127.0.0.1:8500   # discover through a Consul agent
//   dotnet run --project samples/MeshDemo -- --kubernetes                     # discover from EndpointSlices
//   dotnet run --project samples/MeshDemo -- --status-port 5099               # http://127.0.0.1:5099/mesh
//   dotnet run --project samples/MeshDemo -- --zones                          # zone-aware routing, a zone that slows
//   dotnet run --project samples/MeshDemo -- --canary 10                      # 10% of the calls to a v2 set, by a route
using MeshClient.Status;
using System.Diagnostics;
using System.Globalization;
using MeshClient.Balancing;
using MeshDemo;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Spectre.Console;

const string ServiceName = "catalog";
const string CanaryService = "catalog-v2";

var options = DemoOptions.Parse(args, out var error);
if (error is not null)
{
    Console.Error.WriteLine(error);
    Console.Error.WriteLine(DemoOptions.Usage);
    return 2;
}

if (options.Help)
{
    Console.WriteLine(DemoOptions.Usage);
    return 0;
}

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    // Ctrl+C ends the run early; the summary is still printed.
    e.Cancel = true;
    stop.Cancel();
};

// 1. The backends. The failure window is a fraction of the run, so a short run shows it too.
IEnumerable<BackendSpec> specs =
[
    new("alpha", 3, "fast", TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(3)),
    new("bravo", 2, "fast", TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(3)),
    new("charlie", 2, "slow", TimeSpan.FromMilliseconds(60), TimeSpan.FromMilliseconds(40)),
    new("delta", 1, "flaky", TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(3), FailFrom: 0.2, FailUntil: 0.6),
];
if (options.Zones)
{
    // Two zones, the caller in zone-a: its one instance there, alpha, turns 30 ms slower half-way through the run, and
    // the calls that stayed in the zone spill to zone-b (the table's Zone column and the zone routing line show it).
    specs =
    [
        new("alpha", 1, "local", TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(3), Zone: DemoZones.CallerZone, SlowFrom: DemoZones.SlowFrom, SlowBy: TimeSpan.FromMilliseconds(30)),
        new("bravo", 1, "remote", TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(3), Zone: DemoZones.OtherZone),
        new("charlie", 1, "remote", TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(3), Zone: DemoZones.OtherZone),
        new("delta", 1, "remote", TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(3), Zone: DemoZones.OtherZone),
    ];
}

if (options.Canary is not null)
{
    // The v2 set: two fast instances of another service, which a route gives the canary's share of catalog's calls.
    specs = [.. specs,
        new("echo", 1, "canary v2", TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(3), Service: CanaryService),
        new("foxtrot", 1, "canary v2", TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(3), Service: CanaryService)];
}

if (options.Kubernetes)
{
    // An EndpointSlice has no weights: every pod of a Service weighs 1, and the table says so.
    specs = specs.Select(s => s with { Weight = 1 }).ToList();
}

var clock = new Stopwatch();
var backends = new List<Backend>();
KubernetesStandIn? kubernetes = null;
StatusPage? statusPage = null;
foreach (var spec in specs)
{
    backends.Add(await Backend.StartAsync(spec, clock, options.Duration));
}

try
{
    // 2. The caller: an ordinary generic host. appsettings.json holds the mesh settings (policy, outlier detection);
    //    the endpoints are added here because their ports are only known now. In a real service they would be in
    //    appsettings.json too (Mesh:Services:catalog:Endpoints), or come from Consul.
    var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
    builder.Logging.ClearProviders(); // the terminal belongs to the table
    var events = new MeshEvents(clock); // the mesh's ejections, probes and readmissions, from its own log events
    builder.Logging.AddProvider(events);
    builder.Logging.AddFilter<MeshEvents>("MeshClient", LogLevel.Information);
    var endpoints = new Dictionary<string, string?>();
    if (options.Kubernetes)
    {
        // Discovery through Kubernetes: the API stand-in serves a slice per backend; the mesh reads a kubeconfig.
        kubernetes = await KubernetesStandIn.StartAsync(ServiceName, backends);
        endpoints["Mesh:Kubernetes:KubeConfigPath"] = kubernetes.KubeConfigPath;
        endpoints["Mesh:Kubernetes:Namespace"] = KubernetesStandIn.Namespace;
        Console.WriteLine($"Started a Kubernetes API stand-in at {kubernetes.Address} (EndpointSlices of '{ServiceName}' in namespace '{KubernetesStandIn.Namespace}'); discovering '{ServiceName}' through it.");
    }
    else if (options.Consul is null)
    {
        foreach (var group in backends.GroupBy(b => b.Spec.Service ?? ServiceName))
        {
            var i = 0;
            foreach (var backend in group)
            {
                endpoints[$"Mesh:Services:{group.Key}:Endpoints:{i}:Address"] = backend.Address.ToString();
                endpoints[$"Mesh:Services:{group.Key}:Endpoints:{i}:Weight"] = backend.Spec.Weight.ToString(CultureInfo.InvariantCulture);
                if (backend.Spec.Zone is { } zone)
                {
                    endpoints[$"Mesh:Services:{group.Key}:Endpoints:{i}:Zone"] = zone;
                }

                i++;
            }
        }

        if (options.Zones)
        {
            endpoints["Mesh:Zone"] = DemoZones.CallerZone; // or the MESH_ZONE environment variable
        }

        if (options.Canary is { } canary)
        {
            // The split: catalog's calls go to its own endpoints or to catalog-v2, by weight, each backend with its own
            // balancing and outlier detection; a call stays in the backend it was routed to, its retries too.
            endpoints[$"Mesh:Services:{ServiceName}:Routes:0:Name"] = "canary";
            endpoints[$"Mesh:Services:{ServiceName}:Routes:0:Backends:0:Service"] = ServiceName;
            endpoints[$"Mesh:Services:{ServiceName}:Routes:0:Backends:0:Weight"] = (100 - canary).ToString(CultureInfo.InvariantCulture);
            endpoints[$"Mesh:Services:{ServiceName}:Routes:0:Backends:1:Service"] = CanaryService;
            endpoints[$"Mesh:Services:{ServiceName}:Routes:0:Backends:1:Weight"] = canary.ToString(CultureInfo.InvariantCulture);
        }
    }
    else
    {
        // Discovery through Consul: register every backend with the agent (a plain HttpClient, outside the mesh).
        await ConsulRegistration.RegisterAsync(options.Consul, ServiceName, backends, stop.Token);
    }

    if (options.Policy is not null)
    {
        endpoints["Mesh:LoadBalancer"] = options.Policy;
    }

    builder.Configuration.AddInMemoryCollection(endpoints);

    using var stats = new DemoStats(clock, backends);
    var mesh = builder.Services.AddMesh();
    if (options.Consul is { } consulAddress)
    {
        mesh.AddConsul(o => o.Address = consulAddress.ToString());
    }
    else if (options.Kubernetes)
    {
        mesh.AddKubernetes(); // binds Mesh:Kubernetes: the kubeconfig above
    }

    builder.Services.AddHttpClient(ServiceName, c => c.BaseAddress = new Uri($"http://{ServiceName}"))
        .ConfigurePrimaryHttpMessageHandler(() => new AttemptRecorder(stats)); // demo only: times each attempt per endpoint

    using var host = builder.Build();
    await host.StartAsync(stop.Token); // validates the mesh options (ValidateOnStart)
    var factory = host.Services.GetRequiredService<IHttpClientFactory>();
    var meshStatus = host.Services.GetRequiredService<IMeshStatus>();
    var dashboard = new Dashboard(options, backends, stats, events, meshStatus, ServiceName);
    if (options.StatusPort is { } statusPort)
    {
        statusPage = await StatusPage.StartAsync(statusPort, meshStatus, stop.Token);
        Console.WriteLine($"Status page: {statusPage.Address} (a browser; or JSON with Accept: application/json)");
    }

    // 3. A short warm-up (JIT, connections, first latency estimates), not counted; then traffic for the run.
    var warmUp = factory.CreateClient(ServiceName);
    await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
    {
        for (var i = 0; i < 5; i++)
        {
            using var response = await warmUp.GetAsync(new Uri("/work", UriKind.Relative), stop.Token);
        }
    }));

    clock.Start();
    var traffic = Traffic.RunAsync(factory.CreateClient(ServiceName), stats, options, clock, stop.Token);
    var interactive = !options.Plain && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
    if (interactive)
    {
        await AnsiConsole.Live(dashboard.Render(TimeSpan.Zero))
            .AutoClear(false)
            .Overflow(VerticalOverflow.Ellipsis)
            .StartAsync(async context =>
            {
                while (!traffic.IsCompleted)
                {
                    await Task.WhenAny(traffic, Task.Delay(250));
                    dashboard.Sample(clock.Elapsed);
                    context.UpdateTarget(dashboard.Render(clock.Elapsed));
                    context.Refresh();
                }
            });
    }
    else
    {
        // Not a terminal (CI, a pipe): plain lines, and tables as wide as a log viewer shows them.
        AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, 100);
        Console.WriteLine($"MeshDemo: {backends.Count} instances of '{ServiceName}' on 127.0.0.1 (discovery: {dashboard.Source}), {options.RequestsPerSecond} requests/s for {options.Duration.TotalSeconds:0.#}s.");
        foreach (var backend in backends)
        {
            Console.WriteLine($"  {backend.Name,-8} {backend.Address}  weight {backend.Spec.Weight}  {backend.Spec.Role}");
        }

        if (options.Canary is { } split)
        {
            Console.WriteLine($"Route 'canary' of '{ServiceName}': {100 - split}% to {ServiceName} (alpha to delta), {split}% to {CanaryService} (echo, foxtrot).");
        }

        var nextLine = TimeSpan.FromSeconds(1);
        while (!traffic.IsCompleted)
        {
            await Task.WhenAny(traffic, Task.Delay(200));
            foreach (var change in dashboard.Sample(clock.Elapsed))
            {
                Console.WriteLine(change);
            }

            if (clock.Elapsed >= nextLine || traffic.IsCompleted)
            {
                Console.WriteLine(dashboard.Line(clock.Elapsed));
                nextLine += TimeSpan.FromSeconds(2);
            }
        }
    }

    await traffic;
    dashboard.Sample(clock.Elapsed);
    AnsiConsole.WriteLine();
    var (summary, notes) = dashboard.Summary(clock.Elapsed);
    AnsiConsole.Write(summary);
    Console.WriteLine(notes);
    AnsiConsole.WriteLine();

    if (statusPage is not null)
    {
        await statusPage.DisposeAsync();
        statusPage = null;
    }

    await host.StopAsync(CancellationToken.None);

    // Exit code 0 is "the mesh carried traffic"; only a run where nothing succeeded is an error.
    return stats.Succeeded > 0 ? 0 : 1;
}
finally
{
    if (statusPage is not null)
    {
        await statusPage.DisposeAsync();
    }

    if (kubernetes is not null)
    {
        await kubernetes.DisposeAsync();
    }

    if (options.Consul is not null)
    {
        await ConsulRegistration.DeregisterAsync(options.Consul, backends);
    }

    foreach (var backend in backends)
    {
        await backend.DisposeAsync();
    }
}
