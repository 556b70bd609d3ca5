using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using MeshClient.Consul;
using MeshClient.ConsulServer;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace MeshClient.Tests.Consul;

/// <summary>Self-registration of a real WebApplication: register, check, heartbeat, re-register, deregister, retry.</summary>
public sealed class ConsulRegistrationTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task HttpCheck_RegistersOnStart_TakesTraffic_AndDeregistersOnGracefulStop()
    {
        await using var consul = await ConsulTestServer.StartAsync(new ConsulServerOptions { HttpCheckInitialStagger = false });
        var healthy = true;
        var service = await ServiceApp.StartAsync(consul, new()
        {
            ["Mesh:Consul:Registration:HealthCheckPath"] = "/health",
            ["Mesh:Consul:Registration:CheckInterval"] = "00:00:01",
            ["Mesh:Consul:Registration:Tags:0"] = "v1",
            ["Mesh:Consul:Registration:Meta:version"] = "1.2",
            ["Mesh:Consul:Registration:Weight"] = "5",
            ["Mesh:Consul:Registration:DeregisterCriticalServiceAfter"] = "00:01:30",
        }, health: () => healthy);
        await using (service)
        {
            var registered = await AgentServiceAsync(consul, service.Id);
            Assert.Equal("orders", registered.GetProperty("Service").GetString());
            Assert.Equal(service.Port, registered.GetProperty("Port").GetInt32());
            Assert.Equal("127.0.0.1", registered.GetProperty("Address").GetString());
            Assert.Equal(["v1"], registered.GetProperty("Tags").EnumerateArray().Select(t => t.GetString()));
            Assert.Equal("1.2", registered.GetProperty("Meta").GetProperty("version").GetString());
            Assert.Equal(5, registered.GetProperty("Weights").GetProperty("Passing").GetInt32());
            Assert.Equal($"orders-{Dns.GetHostName()}-{service.Port}", service.Id);

            // Consul runs the HTTP check against the registered URL: the instance turns passing, then takes traffic.
            var check = await PassingCheckAsync(consul, "orders");
            Assert.Equal("http", check.GetProperty("Type").GetString());
            Assert.StartsWith($"HTTP GET http://127.0.0.1:{service.Port}/health: 200", check.GetProperty("Output").GetString(), StringComparison.Ordinal);
            await using (var caller = ConsulTestHost.Create(consul))
            {
                Assert.Equal("orders says hello", await caller.CreateClient().GetStringAsync("http://orders/"));
            }

            healthy = false;
            await Eventually.TrueAsync(async () => (await HealthAsync(consul, "orders", passing: true)).GetArrayLength() == 0, Patience, "a failing health endpoint turns the check critical");
            healthy = true;

            await service.App.StopAsync();
            Assert.Null(await TryAgentServiceAsync(consul, service.Id));
            Assert.Single(service.Events(314));
        }
    }

    [Fact]
    public async Task TtlCheck_IsHeartbeated_AndTheServiceRegistersAgainWhenTheAgentForgetsIt()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        var service = await ServiceApp.StartAsync(consul, new()
        {
            ["Mesh:Consul:Registration:Ttl"] = "00:00:01.500",
            ["Mesh:Consul:Registration:ServiceId"] = "orders-1",
        });
        await using (service)
        {
            var check = await PassingCheckAsync(consul, "orders");
            Assert.Equal("ttl", check.GetProperty("Type").GetString());
            Assert.Equal("service:orders-1", check.GetProperty("CheckID").GetString());

            // Heartbeats every TTL/3 keep it passing across more than one TTL.
            var first = consul.CountRequests("/v1/agent/check/pass/service:orders-1");
            await Eventually.TrueAsync(() => consul.CountRequests("/v1/agent/check/pass/service:orders-1") >= first + 4, Patience, "the TTL check is heartbeated");
            Assert.Equal(1, (await HealthAsync(consul, "orders", passing: true)).GetArrayLength());

            // The agent restarts without its data: the next heartbeat gets 404 and the service registers again.
            consul.ForgetAgentServices();
            await PassingCheckAsync(consul, "orders");
            Assert.Single(service.Events(313));
            Assert.Equal(2, service.Events(310).Count);

            await service.App.StopAsync();
            Assert.Null(await TryAgentServiceAsync(consul, "orders-1"));
        }
    }

    [Fact]
    public async Task WhileConsulIsDownAtStart_TheAppStarts_AndRegistrationKeepsRetryingUntilConsulIsBack()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        await consul.StopAsync();
        var service = await ServiceApp.StartAsync(consul, new() { ["Mesh:Consul:Registration:ServiceId"] = "orders-1" }, waitForRegistration: false);
        await using (service)
        {
            await Eventually.TrueAsync(() => service.Events(311).Count == 1, Patience, "the failure is logged");
            await Task.Delay(TimeSpan.FromSeconds(1)); // retries go on meanwhile (base 50 ms, max 400 ms)
            Assert.Single(service.Events(311));

            await consul.StartAsync();
            await PassingCheckAsync(consul, "orders");
            await Eventually.TrueAsync(() => service.Events(312).Count == 1, Patience, "the recovery is logged once");

            await service.App.StopAsync();
            Assert.Null(await TryAgentServiceAsync(consul, "orders-1"));
        }
    }

    [Fact]
    public async Task WithoutAServerAndWithoutAPort_NothingIsRegistered_AndTheReasonIsLogged()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        await using var mesh = ConsulTestHost.Create(consul, s =>
        {
            s["Mesh:Consul:Registration:Enabled"] = "true";
            s["Mesh:Consul:Registration:ServiceName"] = "worker";
        });
        var hosted = mesh.Services.GetServices<IHostedService>().OfType<ConsulRegistrationService>().Single();
        await hosted.StartAsync(CancellationToken.None);
        await Eventually.TrueAsync(() => mesh.Events(316).Count == 1, Patience, "the missing port is logged");
        await hosted.StopAsync(CancellationToken.None);
        Assert.Equal(0, consul.CountRequests("/v1/agent/"));
    }

    /// <summary>
    /// Listening on 0.0.0.0, the service used to register no address (Consul then sends traffic to its node address)
    /// while its HTTP check probed Dns.GetHostName(), which can be elsewhere. Now the host's primary address is
    /// registered, and the check probes exactly that address.
    /// </summary>
    [Fact]
    public async Task ListeningOnAWildcard_RegistersTheHostsPrimaryAddress_AndTheHttpCheckProbesThatSameAddress()
    {
        await using var consul = await ConsulTestServer.StartAsync(new ConsulServerOptions { HttpCheckInitialStagger = false });
        await using var service = await ServiceApp.StartAsync(consul, new()
        {
            ["Mesh:Consul:Registration:HealthCheckPath"] = "/health",
            ["Mesh:Consul:Registration:CheckInterval"] = "00:00:01",
        }, bindTo: IPAddress.Any);
        var primary = HostAddress.Primary()?.ToString();

        var registered = await AgentServiceAsync(consul, service.Id);
        var address = registered.GetProperty("Address").GetString();
        var check = await PassingCheckAsync(consul, "orders");
        var probed = new Uri(check.GetProperty("Output").GetString()!.Split(' ')[2].TrimEnd(':'));

        if (primary is not null)
        {
            Assert.Equal(primary, address);
            Assert.Equal(primary, probed.Host.Trim('[', ']'));
        }
        else
        {
            // A host with only loopback: nothing to register, and the agent (local too) probes 127.0.0.1.
            Assert.True(string.IsNullOrEmpty(address));
            Assert.Equal("127.0.0.1", probed.Host);
        }

        Assert.Equal(service.Port, probed.Port);
        Assert.Contains(service.Events(310), r => r.Message.Contains($"{primary ?? "(agent address)"}:{service.Port}", StringComparison.Ordinal));
    }

    private static async Task<JsonElement> PassingCheckAsync(ConsulTestServer consul, string service)
    {
        JsonElement entries = default;
        await Eventually.TrueAsync(async () => (entries = await HealthAsync(consul, service, passing: true)).GetArrayLength() == 1, Patience, $"{service} is registered and passing");
        return entries[0].GetProperty("Checks").EnumerateArray().Single(c => c.GetProperty("ServiceID").GetString()!.Length > 0);
    }

    private static async Task<JsonElement> HealthAsync(ConsulTestServer consul, string service, bool passing)
    {
        using var http = new HttpClient();
        return await http.GetFromJsonAsync<JsonElement>(new Uri(consul.Address, $"/v1/health/service/{service}" + (passing ? "?passing" : string.Empty)));
    }

    private static async Task<JsonElement> AgentServiceAsync(ConsulTestServer consul, string id)
    {
        JsonElement? service = null;
        await Eventually.TrueAsync(async () => (service = await TryAgentServiceAsync(consul, id)) is not null, Patience, $"{id} is registered");
        return service!.Value;
    }

    private static async Task<JsonElement?> TryAgentServiceAsync(ConsulTestServer consul, string id)
    {
        using var http = new HttpClient();
        var services = await http.GetFromJsonAsync<JsonElement>(new Uri(consul.Address, "/v1/agent/services"));
        return services.TryGetProperty(id, out var service) ? service : null;
    }

    /// <summary>A real WebApplication (Kestrel on 127.0.0.1:0) that registers itself as "orders".</summary>
    private sealed class ServiceApp : IAsyncDisposable
    {
        private ServiceApp(WebApplication app, FakeLogCollector logs, int port)
        {
            App = app;
            Logs = logs;
            Port = port;
        }

        public WebApplication App { get; }

        public FakeLogCollector Logs { get; }

        public int Port { get; }

        public string Id => App.Services.GetServices<IHostedService>().OfType<ConsulRegistrationService>().Single().Current!.Id!;

        public IReadOnlyList<FakeLogRecord> Events(int id) => [.. Logs.GetSnapshot().Where(r => r.Id.Id == id)];

        public static async Task<ServiceApp> StartAsync(ConsulTestServer consul, Dictionary<string, string?> settings, Func<bool>? health = null, bool waitForRegistration = true, IPAddress? bindTo = null)
        {
            var builder = WebApplication.CreateSlimBuilder();
            var logs = new FakeLogCollector();
            builder.Logging.ClearProviders().SetMinimumLevel(LogLevel.Debug).AddProvider(new FakeLoggerProvider(logs));
            builder.WebHost.UseKestrel(k => k.Listen(bindTo ?? IPAddress.Loopback, 0));
            var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
            {
                ["Mesh:Consul:Address"] = consul.Address.ToString(),
                ["Mesh:Consul:RetryBaseDelay"] = "00:00:00.050",
                ["Mesh:Consul:RetryMaxDelay"] = "00:00:00.400",
                ["Mesh:Consul:Registration:Enabled"] = "true",
                ["Mesh:Consul:Registration:ServiceName"] = "orders",
            };
            foreach (var (key, value) in settings)
            {
                values[key] = value;
            }

            builder.Configuration.AddInMemoryCollection(values);
            builder.Services.AddMesh().AddConsul();
            var app = builder.Build();
            app.Run(context => context.Request.Path == "/health"
                ? (health?.Invoke() ?? true) ? context.Response.WriteAsync("ok") : Fail(context)
                : context.Response.WriteAsync("orders says hello"));
            var started = TimeProvider.System.GetTimestamp();
            await app.StartAsync();
            Assert.True(TimeProvider.System.GetElapsedTime(started) < TimeSpan.FromSeconds(3), "start-up never waits for Consul");
            var port = new Uri(app.Urls.First()).Port;
            var service = new ServiceApp(app, logs, port);
            if (waitForRegistration)
            {
                await Eventually.TrueAsync(() => service.Events(310).Count > 0, Patience, "the service registers");
            }

            return service;
        }

        private static Task Fail(HttpContext context)
        {
            context.Response.StatusCode = 503;
            return context.Response.WriteAsync("down");
        }

        public async ValueTask DisposeAsync()
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
    }
}
