using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace MeshDemo;

/// <summary>With --consul: registers the demo's backends with a Consul agent, and removes them at the end.</summary>
internal static class ConsulRegistration
{
    public static async Task RegisterAsync(Uri consul, string serviceName, IEnumerable<Backend> backends, CancellationToken cancellationToken)
    {
        using var client = new HttpClient { BaseAddress = consul };
        foreach (var backend in backends)
        {
            var registration = new JsonObject
            {
                ["ID"] = $"{serviceName}-{backend.Name}",
                ["Name"] = serviceName,
                ["Address"] = backend.Address.Host,
                ["Port"] = backend.Port,
                ["Weights"] = new JsonObject { ["Passing"] = backend.Spec.Weight, ["Warning"] = 1 },
                ["Check"] = new JsonObject
                {
                    ["HTTP"] = new Uri(backend.Address, "/health").ToString(),
                    ["Interval"] = "1s",
                    ["DeregisterCriticalServiceAfter"] = "1m",
                },
            };
            using var response = await client.PutAsync(new Uri("/v1/agent/service/register", UriKind.Relative), JsonContent.Create(registration), cancellationToken);
            response.EnsureSuccessStatusCode();
        }

        // A new check starts critical until it first passes: wait (bounded) until every instance passes its check.
        var expected = backends.Count();
        for (var i = 0; i < 100; i++)
        {
            var passing = await client.GetFromJsonAsync<JsonArray>(new Uri($"/v1/health/service/{serviceName}?passing", UriKind.Relative), cancellationToken);
            if (passing?.Count >= expected)
            {
                break;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Registered the backends with Consul at {consul}; discovering '{serviceName}' through it."));
    }

    public static async Task DeregisterAsync(Uri consul, IEnumerable<Backend> backends)
    {
        using var client = new HttpClient { BaseAddress = consul, Timeout = TimeSpan.FromSeconds(5) };
        foreach (var backend in backends)
        {
            try
            {
                using var response = await client.PutAsync(new Uri($"/v1/agent/service/deregister/catalog-{backend.Name}", UriKind.Relative), null);
            }
            catch (HttpRequestException)
            {
                // The agent is gone: nothing to clean up.
            }
        }
    }
}
