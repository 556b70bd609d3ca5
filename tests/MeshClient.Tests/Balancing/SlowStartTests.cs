using System.Net;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Status;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// Slow start (<c>Mesh:SlowStart</c>): an endpoint that joins a service in use, or comes back from an ejection,
/// ramps from 10% of its weight to all of it over the window; on a FakeTimeProvider, with every policy.
/// </summary>
public sealed class SlowStartTests(ITestOutputHelper output)
{
    private const string Newcomer = "10.0.0.5:8080";

    [Theory]
    [InlineData(0.0, 1.0, 10, 0.10)]
    [InlineData(0.5, 1.0, 10, 0.10)] // Envoy counts at least 1 s
    [InlineData(2.0, 1.0, 10, 0.20)]
    [InlineData(5.0, 1.0, 10, 0.50)]
    [InlineData(9.9, 1.0, 10, 0.99)]
    [InlineData(10.0, 1.0, 10, 1.00)]
    [InlineData(2.5, 2.0, 10, 0.50)] // (0.25)^(1/2): faster at first
    [InlineData(5.0, 0.5, 10, 0.25)] // (0.5)^2: slower at first
    [InlineData(1.0, 1.0, 30, 0.30)] // the floor
    public void Factor_FollowsEnvoysFormula(double seconds, double aggression, int minPercent, double expected)
    {
        var slowStart = new SlowStartRamp(TimeSpan.FromSeconds(10), aggression, minPercent);
        Assert.Equal(expected, slowStart.Factor(TimeSpan.FromSeconds(seconds)), 6);
    }

    [Fact]
    public void Off_ByDefault_AndServiceValuesOverrideGlobalOnes()
    {
        var options = new MeshOptions();
        Assert.False(SlowStartRamp.Resolve(options.SlowStart, null).Enabled);
        Assert.Equal(1.0, SlowStartRamp.Resolve(options.SlowStart, null).Factor(TimeSpan.Zero));

        options.SlowStart.Window = TimeSpan.FromSeconds(30);
        options.SlowStart.MinWeightPercent = 20;
        var service = new SlowStartOptions { Window = TimeSpan.FromSeconds(60) };
        Assert.Equal(new SlowStartRamp(TimeSpan.FromSeconds(60), 1.0, 20), SlowStartRamp.Resolve(options.SlowStart, service));
        Assert.Equal(TimeSpan.FromSeconds(3), SlowStartRamp.Resolve(options.SlowStart, service).Step);
    }

    [Theory]
    [InlineData(LoadBalancerNames.RoundRobin)]
    [InlineData(LoadBalancerNames.Random)]
    [InlineData(LoadBalancerNames.LeastRequest)]
    [InlineData(LoadBalancerNames.PeakEwma)]
    public async Task AnEndpointJoiningAServiceInUse_RampsFromAFractionToItsFullShare(string policy)
    {
        var time = FakeTime.Create();
        var (host, stub) = StubEndpoints.CreateHost(time, s =>
        {
            s["Mesh:Services:catalog:LoadBalancer"] = policy;
            s["Mesh:SlowStart:Window"] = "00:00:10";
        });
        await using var _ = host;
        var client = host.CreateClient();
        await SendAsync(client, 10);

        // The first four were resolved together: none is in slow start.
        Assert.All(Endpoints(host), e => Assert.Null(e.SlowStartPercent));

        await AddNewcomerAsync(host, policy, s => s["Mesh:SlowStart:Window"] = "00:00:10");
        Assert.Equal(10, Endpoints(host).Single(e => e.Address.Contains(Newcomer, StringComparison.Ordinal)).SlowStartPercent);

        // Weights 1, 1, 1, 1 and 0.1: the newcomer's share is 0.1 / 4.1 = 2.4% (every endpoint answers at once, so
        // the load-aware policies see equal load and follow the weights too).
        var first = await ShareAsync(stub, client);
        Assert.InRange(first, 0.005, 0.06);

        // Halfway: 0.5 / 4.5 = 11%.
        await AdvanceAsync(time, TimeSpan.FromSeconds(5));
        Assert.Equal(50, Endpoints(host).Single(e => e.Address.Contains(Newcomer, StringComparison.Ordinal)).SlowStartPercent);
        var half = await ShareAsync(stub, client);
        Assert.InRange(half, 0.07, 0.16);

        // After the window: a full fifth, and slow start is over.
        await AdvanceAsync(time, TimeSpan.FromSeconds(5));
        Assert.All(Endpoints(host), e => Assert.Null(e.SlowStartPercent));
        var full = await ShareAsync(stub, client);
        Assert.InRange(full, 0.15, 0.25);
        Assert.All(host.Registry.GetTable("catalog").States, s => Assert.Equal(0, s.SlowStartSince));
        output.WriteLine($"{policy}: newcomer's share at 0 s {first:P1} (expected 2.4%), at 5 s {half:P1} (11.1%), after 10 s {full:P1} (20%)");
    }

    [Fact]
    public async Task WithoutSlowStart_TheNewcomerTakesItsFullShareAtOnce()
    {
        var time = FakeTime.Create();
        var (host, stub) = StubEndpoints.CreateHost(time, _ => { });
        await using var _ = host;
        var client = host.CreateClient();
        await SendAsync(client, 10);
        await AddNewcomerAsync(host, LoadBalancerNames.RoundRobin);

        Assert.Null(Endpoints(host).Single(e => e.Address.Contains(Newcomer, StringComparison.Ordinal)).SlowStartPercent);
        Assert.InRange(await ShareAsync(stub, client), 0.18, 0.22);
    }

    [Fact]
    public async Task AnEndpointReadmittedAfterAnEjection_RampsAgain()
    {
        const string Bad = "10.0.0.4:8080";
        var time = FakeTime.Create();
        var (host, stub) = StubEndpoints.CreateHost(time, s =>
        {
            s["Mesh:SlowStart:Window"] = "00:00:20";
            s["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
            s["Mesh:Resilience:BaseEjectionTime"] = "00:00:05";
        });
        await using var _ = host;
        var client = host.CreateClient();
        stub.Behaviors[Bad] = (_, _) => StubEndpoints.Status(HttpStatusCode.ServiceUnavailable);
        await SendAsync(client, 40);
        var bad = host.Registry.GetTable("catalog").States.Single(s => s.Id.Contains("10.0.0.4", StringComparison.Ordinal));
        Assert.Equal(EndpointStatus.Ejected, bad.Status);

        // It recovers; after the ejection one probe succeeds and readmits it, in slow start.
        stub.Behaviors.Clear();
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(EndpointStatus.Probing, bad.Status);
        await SendAsync(client, 20);
        Assert.Equal(EndpointStatus.Healthy, bad.Status);
        Assert.Equal(10, Endpoints(host).Single(e => e.Address.Contains(Bad, StringComparison.Ordinal)).SlowStartPercent);

        // The readmission (decided by the probe's outcome) is published off the request thread: wait for it.
        await Poll.UntilAsync(() => !host.Registry.GetTable("catalog").RebuildQueued);

        // Weights 1, 1, 1 and 0.1: 3.2% instead of 25%.
        stub.Reset();
        await SendAsync(client, 1_000);
        Assert.InRange(stub.Count(Bad), 20, 45);

        await AdvanceAsync(time, TimeSpan.FromSeconds(20));
        stub.Reset();
        await SendAsync(client, 1_000);
        Assert.InRange(stub.Count(Bad), 230, 270);
    }

    [Fact]
    public async Task TheRampTimer_IsDisposedWithTheHost()
    {
        var counting = new CountingTimeProvider(FakeTime.Create());
        var stub = new StubEndpoints();
        var settings = StubEndpoints.Settings("catalog", LoadBalancerNames.RoundRobin, 4);
        settings["Mesh:SlowStart:Window"] = "00:00:10";
        var host = MeshHost.Create(settings, services =>
        {
            services.AddSingleton<TimeProvider>(counting);
            services.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => stub);
        });
        await SendAsync(host.CreateClient(), 4);
        await AddNewcomerAsync(host, LoadBalancerNames.RoundRobin, s => s["Mesh:SlowStart:Window"] = "00:00:10");
        Assert.Equal(1, counting.LiveOf(nameof(MeshClient.Balancing.ServiceTable))); // the table's own timer
        Assert.Equal(1, counting.LiveOf(nameof(MeshClient.Balancing.SlowStartWeights))); // and the ramp's

        await host.DisposeAsync();
        Assert.Equal(0, counting.LiveOf(nameof(MeshClient.Balancing.ServiceTable)));
        Assert.Equal(0, counting.LiveOf(nameof(MeshClient.Balancing.SlowStartWeights)));
    }

    private static IReadOnlyList<MeshEndpointStatus> Endpoints(MeshHost host) =>
        host.Services.GetRequiredService<IMeshStatus>().GetServices().Single(s => s.Name == "catalog").Endpoints;

    /// <summary>Reloads the configuration with a fifth endpoint (the other settings as <paramref name="tune"/> sets them).</summary>
    private static async Task AddNewcomerAsync(MeshHost host, string policy, Action<Dictionary<string, string?>>? tune = null)
    {
        var settings = StubEndpoints.Settings("catalog", policy, 5);
        tune?.Invoke(settings);
        host.Configuration.Replace(settings);
        var table = host.Registry.GetTable("catalog");
        await Poll.UntilAsync(() => table.Snapshot?.All.Length == 5);
    }

    /// <summary>Advances fake time in steps, so that each one-shot ramp timer fires and sets the next.</summary>
    private static async Task AdvanceAsync(FakeTimeProvider time, TimeSpan span)
    {
        var step = TimeSpan.FromMilliseconds(100);
        for (var t = TimeSpan.Zero; t < span; t += step)
        {
            time.Advance(step);
        }

        await Task.Yield();
    }

    private static async Task<double> ShareAsync(StubEndpoints stub, HttpClient client)
    {
        stub.Reset();
        await SendAsync(client, 2_000);
        return stub.Count(Newcomer) / 2_000.0;
    }

    private static async Task SendAsync(HttpClient client, int count)
    {
        for (var i = 0; i < count; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }
}
