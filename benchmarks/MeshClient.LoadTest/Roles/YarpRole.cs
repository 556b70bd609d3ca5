using System.Net;
using MeshClient.Balancing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.LoadBalancing;

namespace MeshClient.LoadTest.Roles;

/// <summary>
/// <c>--role yarp --destinations URL,URL,...</c>: the sidecar. A YARP reverse proxy on 127.0.0.1 (port 0) with one
/// catch-all route to one cluster, PowerOfTwoChoices, passive health checks (TransportFailureRate, YARP's defaults).
/// Prints <c>listening PORT</c>; then <c>update URL,URL,...</c> replaces the destinations through
/// <see cref="InMemoryConfigProvider.Update"/> (churn) and answers <c>ok</c>. Exits when its stdin closes.
/// </summary>
internal static class YarpRole
{
    public static async Task<int> RunAsync(LoadTestOptions options, TextReader input, TextWriter output)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Services.AddReverseProxy().LoadFromMemory([Route], [Cluster(options.Destinations)]);
        await using var app = builder.Build();
        app.MapReverseProxy();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var provider = app.Services.GetRequiredService<InMemoryConfigProvider>();
        output.WriteLine($"listening {new Uri(address).Port}");
        output.Flush();

        while (await input.ReadLineAsync() is { } line)
        {
            var parts = line.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && parts[0] == "update")
            {
                provider.Update([Route], [Cluster(parts[1].Split(',', StringSplitOptions.RemoveEmptyEntries))]);
                output.WriteLine("ok");
            }
            else
            {
                output.WriteLine($"error unknown command '{line}'");
            }

            output.Flush();
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await app.StopAsync(cts.Token);
        return 0;
    }

    private static RouteConfig Route => new()
    {
        RouteId = "all",
        ClusterId = "backend",
        Match = new RouteMatch { Path = "{**catch-all}" },
    };

    private static ClusterConfig Cluster(IEnumerable<string> destinations) => new()
    {
        ClusterId = "backend",
        LoadBalancingPolicy = LoadBalancingPolicies.PowerOfTwoChoices,
        HealthCheck = new HealthCheckConfig
        {
            Passive = new PassiveHealthCheckConfig
            {
                Enabled = true,
                Policy = HealthCheckConstants.PassivePolicy.TransportFailureRate,
            },
        },

        // The address is the destination id, so that a destination that stays across an update keeps its health.
        Destinations = destinations.ToDictionary(d => d, d => new DestinationConfig { Address = d }, StringComparer.Ordinal),
    };
}
