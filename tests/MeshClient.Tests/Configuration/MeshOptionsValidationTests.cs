using MeshClient.Balancing;
using MeshClient.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshClient.Tests.Configuration;

/// <summary>Invalid configuration fails at start-up with a message naming the key.</summary>
public sealed class MeshOptionsValidationTests
{
    [Theory]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Weight", "0", "Mesh:Services:catalog:Endpoints:0:Weight must be between 1 and 65535, was 0.")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Weight", "70000", "Mesh:Services:catalog:Endpoints:0:Weight must be between 1 and 65535, was 70000.")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Address", "/relative/path", "Mesh:Services:catalog:Endpoints:0:Address '/relative/path' must be an absolute http or https URI")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Address", "ftp://10.0.0.1:21", "Mesh:Services:catalog:Endpoints:0:Address 'ftp://10.0.0.1:21' must be an absolute http or https URI")]
    [InlineData("Mesh:Services:catalog:LoadBalancer", "Fastest", "Mesh:Services:catalog:LoadBalancer: 'Fastest' is not a load balancer; use one of PeakEwma, LeastRequest, RoundRobin, Random, WeightedRoundRobin.")]
    [InlineData("Mesh:LoadBalancer", "RoundRobbin", "Mesh:LoadBalancer: 'RoundRobbin' is not a load balancer")]
    [InlineData("Mesh:PeakEwma:DecayTime", "00:00:00", "Mesh:PeakEwma:DecayTime must be between")]
    [InlineData("Mesh:SlowStart:Window", "00:00:00.500", "Mesh:SlowStart:Window must be 0 (off) or between 00:00:01 and 01:00:00, was 00:00:00.5000000.")]
    [InlineData("Mesh:SlowStart:Window", "02:00:00", "Mesh:SlowStart:Window must be 0 (off) or between 00:00:01 and 01:00:00, was 02:00:00.")]
    [InlineData("Mesh:SlowStart:Aggression", "0", "Mesh:SlowStart:Aggression must be between 0.1 and 10, was 0.")]
    [InlineData("Mesh:SlowStart:MinWeightPercent", "0", "Mesh:SlowStart:MinWeightPercent must be between 1 and 100, was 0.")]
    [InlineData("Mesh:Services:catalog:SlowStart:MinWeightPercent", "101", "Mesh:Services:catalog:SlowStart:MinWeightPercent must be between 1 and 100, was 101.")]
    [InlineData("Mesh:ZoneRouting:SpillStartRatio", "0.5", "Mesh:ZoneRouting:SpillStartRatio must be between 1 and 100, was 0.5.")]
    [InlineData("Mesh:ZoneRouting:SpillFullRatio", "2000", "Mesh:ZoneRouting:SpillFullRatio must be between 1 and 1000, was 2000.")]
    [InlineData("Mesh:Services:catalog:ZoneRouting:SpillFullRatio", "0.9", "Mesh:Services:catalog:ZoneRouting:SpillFullRatio must be between 1 and 1000, was 0.9.")]
    [InlineData("Mesh:ZoneRouting:Enabled", "maybe", "Mesh:ZoneRouting:Enabled")]
    [InlineData("Mesh:Zone", " eu-1a", "Mesh:Zone ' eu-1a' must be a zone name such as 'eu-west-1a'")]
    [InlineData("Mesh:WeightedRoundRobin:BlackoutPeriod", "-00:00:01", "Mesh:WeightedRoundRobin:BlackoutPeriod must be between 00:00:00 and 01:00:00, was -00:00:01.")]
    [InlineData("Mesh:WeightedRoundRobin:WeightExpirationPeriod", "00:00:00", "Mesh:WeightedRoundRobin:WeightExpirationPeriod must be between 00:00:01 and 1.00:00:00, was 00:00:00.")]
    [InlineData("Mesh:WeightedRoundRobin:WeightUpdatePeriod", "00:00:00.050", "Mesh:WeightedRoundRobin:WeightUpdatePeriod must be between 00:00:00.1000000 and 00:10:00, was 00:00:00.0500000.")]
    [InlineData("Mesh:WeightedRoundRobin:ErrorUtilizationPenalty", "-1", "Mesh:WeightedRoundRobin:ErrorUtilizationPenalty must be between 0 and 100, was -1.")]
    [InlineData("Mesh:Services:catalog:WeightedRoundRobin:ErrorUtilizationPenalty", "NaN", "Mesh:Services:catalog:WeightedRoundRobin:ErrorUtilizationPenalty must be between 0 and 100, was NaN.")]
    [InlineData("Mesh:Resilience:ConnectTimeout", "00:00:00", "Mesh:Resilience:ConnectTimeout must be between")]
    [InlineData("Mesh:Services:catalog:Resilience:ConnectTimeout", "00:20:00", "Mesh:Services:catalog:Resilience:ConnectTimeout must be between")]
    public async Task InvalidConfiguration_FailsAtStartUp_NamingTheKey(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Endpoints:0:Address"] = "http://127.0.0.1:5001",
            ["Mesh:Services:catalog:Endpoints:0:Weight"] = "3",
            [key] = value,
        };
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddMesh();
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ZoneRoutingRatios_WrittenTogether_MustHaveTheFullAboveTheStart()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:ZoneRouting:SpillStartRatio"] = "4",
            ["Mesh:Services:catalog:ZoneRouting:SpillFullRatio"] = "3",
        });
        builder.Services.AddMesh();
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("Mesh:Services:catalog:ZoneRouting:SpillFullRatio (3) must be above Mesh:Services:catalog:ZoneRouting:SpillStartRatio (4).", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ValidConfiguration_Starts()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Mesh:LoadBalancer"] = "roundrobin",
            ["Mesh:Services:catalog:Endpoints:0:Address"] = "https://10.0.0.1:8443/base",
            ["Mesh:Services:catalog:Endpoints:0:Weight"] = "65535",
            ["Mesh:Services:catalog:Endpoints:0:Zone"] = "eu-1a",
        });
        builder.Services.AddMesh();
        using var host = builder.Build();
        await host.StartAsync();
        await host.StopAsync();
    }

    [Fact]
    public void AddMeshWithSection_NamesKeysUnderThatSection()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Platform:Mesh:Services:catalog:Endpoints:0:Address"] = "http://127.0.0.1:5001",
            ["Platform:Mesh:Services:catalog:Endpoints:0:Weight"] = "0",
        }).Build();
        var services = new ServiceCollection().AddLogging();
        services.AddMesh(configuration.GetSection("Platform:Mesh"));
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<MeshOptions>>().Value);

        Assert.Contains("Platform:Mesh:Services:catalog:Endpoints:0:Weight must be between 1 and 65535, was 0.", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddMeshWithAction_ConfiguresServicesInCode()
    {
        var services = new ServiceCollection().AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
        services.AddMesh(o =>
        {
            var service = new MeshServiceOptions { LoadBalancer = "Random" };
            service.Endpoints.Add(new MeshEndpointOptions { Address = "http://127.0.0.1:1", Weight = 2 });
            o.Services["catalog"] = service;
        });
        await using var provider = services.BuildServiceProvider();

        var options = provider.GetRequiredService<IOptions<MeshOptions>>().Value;

        Assert.Equal(2, options.Services["CATALOG"].Endpoints[0].Weight);
    }

    [Fact]
    public async Task AddMesh_OnABareServiceCollection_WithoutConfiguration_Works()
    {
        var services = new ServiceCollection();
        services.AddMesh(o =>
        {
            var service = new MeshServiceOptions();
            service.Endpoints.Add(new MeshEndpointOptions { Address = "http://127.0.0.1:1" });
            o.Services["catalog"] = service;
        });
        await using var provider = services.BuildServiceProvider();

        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient();
        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("http://catalog/"));

        Assert.Equal(HttpRequestError.ConnectionError, ex.HttpRequestError); // discovered, balanced, refused by the closed port
    }
}
