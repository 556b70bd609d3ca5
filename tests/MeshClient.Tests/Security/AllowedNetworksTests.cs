using MeshClient.Configuration;
using MeshClient.ConsulServer;
using MeshClient.Tests.Consul;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;

namespace MeshClient.Tests.Security;

/// <summary>
/// <c>Mesh:AllowedNetworks</c> / <c>Mesh:AllowedHostNames</c>: a discovery answer cannot send requests outside the
/// allowed ranges (cloud metadata, another network), whether it comes from configuration or from Consul.
/// </summary>
public sealed class AllowedNetworksTests
{
    [Fact]
    public async Task EndpointsOutsideTheAllowedNetworks_AreDropped_WithOneWarningEach_AndGetNoTraffic()
    {
        await using var a = await TestBackend.StartAsync("a");
        var logs = new FakeLogCollector();
        string[] hostile =
        [
            "http://169.254.169.254/",              // cloud metadata
            "http://10.0.0.5:8080",                  // another network
            "http://[::ffff:169.254.169.254]:80/",   // the metadata address, IPv4-mapped
            "http://[::1]:80/",                      // IPv6 loopback is not in 127.0.0.0/8
            "http://metadata.google.internal/",      // a name nobody listed
        ];
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:AllowedNetworks:0"] = "127.0.0.0/8",
            ["Mesh:LoadBalancer"] = "RoundRobin",
            ["Mesh:Services:catalog:Endpoints:0:Address"] = a.Address.ToString(),
        };
        for (var i = 0; i < hostile.Length; i++)
        {
            settings[$"Mesh:Services:catalog:Endpoints:{i + 1}:Address"] = hostile[i];
        }

        await using var mesh = MeshHost.Create(settings, s => s.AddLogging(b => b.AddProvider(new FakeLoggerProvider(logs))));
        var client = mesh.CreateClient();
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal("a", await client.GetStringAsync("http://catalog/"));
        }

        var table = mesh.Registry.GetTable("catalog");
        Assert.Equal([a.Address.ToString().TrimEnd('/')], table.Snapshot!.All.Select(e => e.Address));

        // Rediscovery (the periodic refresh) does not repeat the warnings.
        await table.RefreshAsync();
        await table.RefreshAsync();
        var warnings = logs.GetSnapshot().Where(r => r.Id.Id == 110).ToList();
        Assert.Equal(hostile.Length, warnings.Count);
        Assert.All(warnings, w => Assert.Equal(LogLevel.Warning, w.Level));
        Assert.Equal(2, warnings.Count(w => w.Message.Contains("169.254.169.254 is outside Mesh:AllowedNetworks", StringComparison.Ordinal)));
        Assert.Contains(warnings, w => w.Message.Contains("10.0.0.5 is outside", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Message.Contains("::1 is outside", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Message.Contains("'metadata.google.internal' is not in Mesh:AllowedHostNames", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("::1/128", "http://[::1]:5000", true)]
    [InlineData("::/0", "http://[::1]:5000", true)]
    [InlineData("::/0", "http://[fd00::7]:5000", true)]
    [InlineData("::/0", "http://10.0.0.1:5000", false)]          // ::/0 is IPv6 only
    [InlineData("127.0.0.0/8", "http://[::1]:5000", false)]
    [InlineData("127.0.0.0/8", "http://[::ffff:127.0.0.1]:5000", true)]
    [InlineData("fd00::/8", "http://[fd12::1]:5000", true)]
    [InlineData("fd00::/8", "http://[fe80::1]:5000", false)]
    [InlineData("127.0.0.0/8", "http://2852039166/", false)]      // 169.254.169.254 written in decimal (Uri reads it so)
    [InlineData("10.1.2.3", "http://10.1.2.3:80", true)]          // a bare address is one host
    [InlineData("10.1.2.3", "http://10.1.2.4:80", false)]
    [InlineData("0.0.0.0/0", "http://169.254.169.254", true)]    // allowing everything allows everything
    public async Task Ranges_AreCheckedForIPv4AndIPv6(string network, string endpoint, bool kept)
    {
        await using var mesh = MeshHost.Create(new Dictionary<string, string?>
        {
            ["Mesh:AllowedNetworks:0"] = network,
            ["Mesh:Services:catalog:Endpoints:0:Address"] = endpoint,
        });
        var table = mesh.Registry.GetTable("catalog");
        await table.WaitForFirstResolutionAsync(CancellationToken.None);
        Assert.Equal(kept ? 1 : 0, table.Snapshot!.All.Length);
    }

    [Theory]
    [InlineData("catalog.svc.cluster.local", true)]
    [InlineData("CATALOG.svc.cluster.local.", true)]      // case and a trailing dot do not matter
    [InlineData("svc.cluster.local", false)]             // "*.x" is below x, not x itself
    [InlineData("catalog.svc.cluster.local.attacker.example", false)]
    [InlineData("evilsvc.cluster.local", false)]
    [InlineData("consul.internal", true)]
    [InlineData("metadata.google.internal", false)]
    [InlineData("localhost", false)]
    public async Task HostNames_AreAllowedOnlyWhenListed_AndNeverResolved(string host, bool kept)
    {
        await using var mesh = MeshHost.Create(new Dictionary<string, string?>
        {
            ["Mesh:AllowedNetworks:0"] = "10.0.0.0/8",
            ["Mesh:AllowedHostNames:0"] = "*.svc.cluster.local",
            ["Mesh:AllowedHostNames:1"] = "consul.internal",
            ["Mesh:Services:catalog:Endpoints:0:Address"] = $"http://{host}:8080",
        });
        var table = mesh.Registry.GetTable("catalog");
        await table.WaitForFirstResolutionAsync(CancellationToken.None);
        Assert.Equal(kept ? 1 : 0, table.Snapshot!.All.Length);
    }

    [Fact]
    public async Task ConsulAnswers_OutsideTheAllowedNetworks_AreDropped_AndAReloadThatAllowsThemBringsThemBack()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web"));
        consul.Register(new ServiceDefinition { Id = "metadata", Name = "web", Address = "169.254.169.254", Port = 80 });
        consul.Register(new ServiceDefinition { Id = "elsewhere", Name = "web", Address = "10.20.30.40", Port = 8080 });
        consul.Register(new ServiceDefinition { Id = "named", Name = "web", Address = "metadata.google.internal", Port = 80 });
        Dictionary<string, string?>? settings = null;
        await using var mesh = ConsulTestHost.Create(consul, s =>
        {
            s["Mesh:AllowedNetworks:0"] = "127.0.0.0/8";
            settings = s;
        });
        var client = mesh.CreateClient();
        for (var i = 0; i < 12; i++)
        {
            Assert.Equal("a", await client.GetStringAsync("http://web/"));
        }

        Assert.Equal(12, a.Count);
        Assert.Equal(3, mesh.Events(110).Count);
        var table = mesh.Host.Registry.GetTable("web");
        Assert.Single(table.Snapshot!.All);

        // Consul does not change, the options do: the table is rebuilt from the answer it has.
        settings!["Mesh:AllowedNetworks:1"] = "10.0.0.0/8";
        mesh.Host.Configuration.Replace(settings);
        await Poll.UntilAsync(() => table.Snapshot!.All.Length == 2);
        Assert.Contains(table.Snapshot!.All, e => e.Address == "http://10.20.30.40:8080");
    }

    [Theory]
    [InlineData("Mesh:AllowedNetworks:0", "10.1.2.3/8", "Mesh:AllowedNetworks:0 '10.1.2.3/8' is not a network")]
    [InlineData("Mesh:AllowedNetworks:0", "banana", "Mesh:AllowedNetworks:0 'banana' is not a network")]
    [InlineData("Mesh:AllowedNetworks:0", "10.0.0.0/33", "Mesh:AllowedNetworks:0 '10.0.0.0/33' is not a network")]
    [InlineData("Mesh:AllowedHostNames:0", "http://catalog", "Mesh:AllowedHostNames:0 'http://catalog' is not a host name")]
    [InlineData("Mesh:AllowedHostNames:0", "10.0.0.1", "Mesh:AllowedHostNames:0 '10.0.0.1' is not a host name")]
    public async Task InvalidSettings_FailAtStartUp_NamingTheKey(string key, string value, string message)
    {
        await using var mesh = MeshHost.Create(new Dictionary<string, string?>
        {
            ["Mesh:AllowedNetworks:1"] = "127.0.0.0/8",
            ["Mesh:AllowedHostNames:1"] = "ok.internal",
            [key] = value,
        });
        var error = Assert.Throws<OptionsValidationException>(() => mesh.Services.GetRequiredService<IOptionsMonitor<MeshOptions>>().CurrentValue);
        Assert.Contains(error.Failures, f => f.StartsWith(message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task HostNames_WithoutNetworks_FailAtStartUp()
    {
        await using var mesh = MeshHost.Create(new Dictionary<string, string?> { ["Mesh:AllowedHostNames:0"] = "catalog.internal" });
        var error = Assert.Throws<OptionsValidationException>(() => mesh.Services.GetRequiredService<IOptionsMonitor<MeshOptions>>().CurrentValue);
        Assert.Contains(error.Failures, f => f.StartsWith("Mesh:AllowedHostNames is set but Mesh:AllowedNetworks is empty", StringComparison.Ordinal));
    }
}
