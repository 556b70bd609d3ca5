using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MeshClient.Consul;
using MeshClient.ConsulServer;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace MeshClient.Tests.Consul;

/// <summary>Binding from Mesh:Consul, start-up validation naming the key, Enterprise parameters, and TLS.</summary>
public sealed class ConsulOptionsTests
{
    [Fact]
    public async Task EveryKey_BindsFromMeshConsul_AndTheDelegateRunsAfterConfiguration()
    {
        await using var host = MeshHost.Create(new Dictionary<string, string?>
        {
            ["Mesh:Consul:Address"] = "https://consul.internal:8501/prefix",
            ["Mesh:Consul:Token"] = "secret",
            ["Mesh:Consul:Datacenter"] = "eu",
            ["Mesh:Consul:Tags:0"] = "blue",
            ["Mesh:Consul:Tags:1"] = "v2",
            ["Mesh:Consul:OnlyPassing"] = "false",
            ["Mesh:Consul:Namespace"] = "team",
            ["Mesh:Consul:Partition"] = "part",
            ["Mesh:Consul:Scheme"] = "https",
            ["Mesh:Consul:ZoneMetaKey"] = "az",
            ["Mesh:Consul:Wait"] = "00:01:00",
            ["Mesh:Consul:MaxResponseBytes"] = "2048",
            ["Mesh:Consul:Registration:Enabled"] = "true",
            ["Mesh:Consul:Registration:ServiceName"] = "orders",
            ["Mesh:Consul:Registration:Port"] = "8080",
            ["Mesh:Consul:Registration:Tags:0"] = "api",
            ["Mesh:Consul:Registration:Meta:version"] = "3",
            ["Mesh:Consul:Registration:Weight"] = "7",
            ["Mesh:Consul:Registration:HealthCheckPath"] = "/healthz",
            ["Mesh:Consul:Registration:DeregisterCriticalServiceAfter"] = "00:10:00",
        }, services => services.AddMesh().AddConsul(o => o.Datacenter = "us"));
        var options = host.Services.GetRequiredService<IOptions<ConsulOptions>>().Value;
        Assert.Equal("https://consul.internal:8501/prefix", options.Address);
        Assert.Equal("secret", options.Token);
        Assert.Equal("us", options.Datacenter);
        Assert.Equal(["blue", "v2"], options.Tags);
        Assert.False(options.OnlyPassing);
        Assert.Equal(("team", "part", "https", "az"), (options.Namespace, options.Partition, options.Scheme, options.ZoneMetaKey));
        Assert.Equal(TimeSpan.FromMinutes(1), options.Wait);
        Assert.Equal(2048, options.MaxResponseBytes);
        var registration = options.Registration;
        Assert.True(registration.Enabled);
        Assert.Equal(("orders", 8080, 7, "/healthz"), (registration.ServiceName, registration.Port!.Value, registration.Weight, registration.HealthCheckPath));
        Assert.Equal(["api"], registration.Tags);
        Assert.Equal("3", registration.Meta["version"]);
        Assert.Equal(TimeSpan.FromMinutes(10), registration.DeregisterCriticalServiceAfter);
    }

    [Theory]
    [InlineData("Mesh:Consul:Address", "consul:8500", "Mesh:Consul:Address 'consul:8500' must be an absolute http or https URI")]
    [InlineData("Mesh:Consul:Address", "ftp://consul", "Mesh:Consul:Address 'ftp://consul' must be an absolute http or https URI")]
    [InlineData("Mesh:Consul:Address", "http://user:pw@consul:8500", "Mesh:Consul:Address must not have user info, a query or a fragment")]
    [InlineData("Mesh:Consul:Scheme", "grpc", "Mesh:Consul:Scheme 'grpc' must be 'http' or 'https'.")]
    [InlineData("Mesh:Consul:Wait", "00:20:00", "Mesh:Consul:Wait must be between 00:00:01 and 00:10:00, was 00:20:00.")]
    [InlineData("Mesh:Consul:RetryMaxDelay", "00:00:00.001", "Mesh:Consul:RetryMaxDelay (00:00:00.0010000) must not be less than Mesh:Consul:RetryBaseDelay")]
    [InlineData("Mesh:Consul:MaxResponseBytes", "10", "Mesh:Consul:MaxResponseBytes must be at least 1024, was 10.")]
    [InlineData("Mesh:Consul:CaCertificateFile", "/nonexistent/ca.pem", "Mesh:Consul:CaCertificateFile: the file '/nonexistent/ca.pem' does not exist.")]
    [InlineData("Mesh:Consul:Registration:Weight", "0", "Mesh:Consul:Registration:Weight must be between 1 and 65535, was 0.")]
    [InlineData("Mesh:Consul:Registration:Port", "70000", "Mesh:Consul:Registration:Port must be between 1 and 65535, was 70000.")]
    [InlineData("Mesh:Consul:Registration:Address", "0.0.0.0", "Mesh:Consul:Registration:Address '0.0.0.0' is a wildcard")]
    [InlineData("Mesh:Consul:Registration:Ttl", "00:00:00.100", "Mesh:Consul:Registration:Ttl must be between 00:00:01 and 01:00:00")]
    public async Task InvalidOptions_FailWithAMessageNamingTheKey(string key, string value, string message)
    {
        await using var host = MeshHost.Create(new Dictionary<string, string?>
        {
            ["Mesh:Consul:Registration:Enabled"] = "true",
            [key] = value,
        }, services => services.AddMesh().AddConsul());
        var error = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<ConsulOptions>>().Value);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnInvalidReload_IsRefused_TheLastValidOptionsKeepServing_AndUnrelatedReloadsRestartNothing()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web"));
        Dictionary<string, string?>? settings = null;
        await using var mesh = ConsulTestHost.Create(consul, s => settings = s);
        Assert.Single(await mesh.EndpointsAsync("web"));
        await Eventually.TrueAsync(() => consul.WaitingQueries == 1, TimeSpan.FromSeconds(5), "the watch blocks");
        var queries = consul.CountRequests("/v1/health/");

        // A reload that does not touch what Consul is asked keeps the blocking query.
        settings!["Mesh:LoadBalancer"] = "Random";
        mesh.Host.Configuration.Replace(settings);
        // An invalid reload.
        settings["Mesh:Consul:Wait"] = "00:30:00";
        // Refused like Mesh's own reloads (one LastValidOptions holder): warning 11 naming the key, nothing thrown
        // into the thread that reloaded.
        mesh.Host.Configuration.Replace(settings);
        var refused = Assert.Single(mesh.Events(11));
        Assert.Contains("Mesh:Consul:Wait must be between", refused.Message, StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromSeconds(30), mesh.Services.GetRequiredService<ConsulClient>().Options.Wait);
        Assert.Equal(queries, consul.CountRequests("/v1/health/"));

        consul.Register(Services.On(b, "web"));
        await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("web")).Count == 2, TimeSpan.FromSeconds(1), "discovery goes on");
    }

    [Fact]
    public async Task TheConsulClientsHandler_FirstBuiltAfterAnInvalidReload_UsesTheLastValidOptions()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web"));
        Dictionary<string, string?>? settings = null;
        await using var mesh = ConsulTestHost.Create(consul, s => settings = s);

        // Started (a host constructs the client with its hosted registration service), nothing discovered yet.
        _ = mesh.Services.GetRequiredService<ConsulClient>();
        settings!["Mesh:Consul:Wait"] = "00:30:00";
        mesh.Host.Configuration.Replace(settings);
        Assert.Contains("Mesh:Consul:Wait must be between", Assert.Single(mesh.Events(11)).Message, StringComparison.Ordinal);

        // The first discovery builds the Consul client's handler now: from the last valid options, not a throw.
        Assert.Single(await mesh.EndpointsAsync("web"));
    }

    [Fact]
    public async Task AnInvalidToken_IsReported_WithoutEchoingIt()
    {
        await using var host = MeshHost.Create(new Dictionary<string, string?> { ["Mesh:Consul:Token"] = "sec\u0007ret-value" }, services => services.AddMesh().AddConsul());
        var error = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<ConsulOptions>>().Value);
        Assert.Contains("Mesh:Consul:Token must be", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("ret-value", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AMeshBoundFromAnotherSection_BindsConsulFromItsConsulSubsection()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Platform:Mesh:Consul:Address"] = "nope" }).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddMesh(configuration.GetSection("Platform:Mesh")).AddConsul();
        await using var provider = services.BuildServiceProvider();
        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<ConsulOptions>>().Value);
        Assert.Contains("Platform:Mesh:Consul:Address 'nope'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NamespaceAndPartition_AreSentOnlyWhenSet()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync(new ConsulServerOptions { Enterprise = true });
        consul.Register(Services.On(a, "web"));
        await using (var plain = ConsulTestHost.Create(consul))
        {
            Assert.Single(await plain.EndpointsAsync("web"));
            await Eventually.TrueAsync(() => consul.WaitingQueries == 1, TimeSpan.FromSeconds(5), "the watch blocks");
            Assert.All(consul.Requests, r => Assert.Equal(r.Query.Length == 0 ? string.Empty : "?index=", r.Query.Length == 0 ? string.Empty : r.Query[..7]));
        }

        await Eventually.TrueAsync(() => consul.WaitingQueries == 0, TimeSpan.FromSeconds(5), "the watch ends with its host");
        consul.ClearRequests();
        await using var scoped = ConsulTestHost.Create(consul, s =>
        {
            s["Mesh:Consul:Namespace"] = "team a";
            s["Mesh:Consul:Partition"] = "p1";
            s["Mesh:Consul:Datacenter"] = "dc1";
            s["Mesh:Consul:Tags:0"] = "blue";
        });
        Assert.Empty(await scoped.EndpointsAsync("web")); // "a" has no "blue" tag: Consul answers []
        var query = consul.Requests.First(r => r.Path == "/v1/health/service/web").Query;
        Assert.Equal("?dc=dc1&tag=blue&ns=team%20a&partition=p1", query);
    }
}
