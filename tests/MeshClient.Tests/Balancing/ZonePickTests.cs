using System.Diagnostics;
using System.Diagnostics.Metrics;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Status;
using MeshClient.Telemetry;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using OpenTelemetry.Trace;
using Xunit.Abstractions;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// The pick of a service with zone routing on, as the balancing handler makes it: 0 B, the attempt's locality on the
/// call's span and on the <c>mesh.client.zone.attempts</c> counter (only when zone routing is on), the zones in
/// <see cref="IMeshStatus"/>, and a zone that comes back after its ejection taking its calls back with slow start.
/// </summary>
public sealed class ZonePickTests(ITestOutputHelper output)
{
    private const string Zone = "zone-a";

    /// <summary>Four stub endpoints of a service (catalog) on a fake clock: 10.0.0.1 and .2 in the caller's zone, .3 and .4 in zone-b.</summary>
    private static (MeshHost Host, StubEndpoints Stub, Microsoft.Extensions.Time.Testing.FakeTimeProvider Time) Create(string policy = LoadBalancerNames.PeakEwma, Action<Dictionary<string, string?>>? tune = null, Action<IServiceCollection>? services = null, string service = "catalog")
    {
        var time = FakeTime.Create();
        var stub = new StubEndpoints();
        var settings = StubEndpoints.Settings(service, policy, 4);
        settings["Mesh:Zone"] = Zone;
        for (var i = 0; i < 4; i++)
        {
            settings[$"Mesh:Services:{service}:Endpoints:{i}:Zone"] = i < 2 ? Zone : "zone-b";
        }

        tune?.Invoke(settings);
        var host = MeshHost.Create(settings, s =>
        {
            s.AddSingleton<TimeProvider>(time);
            s.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => stub);
            services?.Invoke(s);
        });
        return (host, stub, time);
    }

    private static int LocalCount(StubEndpoints stub) => stub.Count("10.0.0.1:8080") + stub.Count("10.0.0.2:8080");

    [Theory]
    [InlineData(LoadBalancerNames.PeakEwma)]
    [InlineData(LoadBalancerNames.LeastRequest)]
    [InlineData(LoadBalancerNames.RoundRobin)]
    [InlineData(LoadBalancerNames.Random)]
    public async Task ThePickWithZones_AllocatesNothing(string policy)
    {
        var (host, _, time) = Create(policy);
        await using var _ = host;
        using var first = await host.CreateClient().GetAsync("http://catalog/");
        var table = host.Registry.GetTable("catalog");
        var picker = host.Registry.Picker;
        Assert.NotNull(table.Snapshot!.Zones?.Local);

        long Picks(int count)
        {
            long allocated = 0;
            for (var i = 0; i < count; i++)
            {
                if (i % 100 == 0)
                {
                    time.Advance(ZoneBalance.UpdateInterval); // the balance updates (outside the measured part)
                }

                var before = GC.GetAllocatedBytesForCurrentThread();
                var pick = picker.PickAsync(table, table.Snapshot!, "http", context: null, CancellationToken.None);
                var lease = pick.Result;
                lease.Complete(AttemptOutcome.Success);
                allocated += GC.GetAllocatedBytesForCurrentThread() - before;
                Assert.True(pick.IsCompletedSuccessfully);
            }

            return allocated;
        }

        Picks(2_000); // warm up (tiered JIT)
        Assert.Equal(0, Picks(10_000));
    }

    [Fact]
    public async Task EveryAttempt_IsCountedByLocality_AndTheCallSpanCarriesTheLastOnes()
    {
        // A service name of its own: the mesh's ActivitySource is process-wide, and other tests call "catalog".
        const string Service = "zonedcatalog";
        var spans = new List<Activity>();
        var (host, stub, _) = Create(services: s => s.AddOpenTelemetry().WithTracing(t => t.AddInMemoryExporter(spans)), service: Service);
        await using var _ = host;
        using var tracer = host.Services.GetRequiredService<TracerProvider>();
        using var attempts = new MetricCollector<long>(host.Services.GetRequiredService<IMeterFactory>(), MeshTelemetry.MeterName, "mesh.client.zone.attempts");
        using var calls = new MetricCollector<double>(host.Services.GetRequiredService<IMeterFactory>(), MeshTelemetry.MeterName, "mesh.client.request.duration");
        var client = host.CreateClient();
        for (var i = 0; i < 20; i++)
        {
            using var response = await client.GetAsync($"http://{Service}/");
        }

        // The zone's endpoints fail (refused): each call's first attempt is local, its requeue may go remote.
        stub.Behaviors["10.0.0.1:8080"] = (_, _) => throw new HttpRequestException(HttpRequestError.ConnectionError, "refused");
        stub.Behaviors["10.0.0.2:8080"] = (_, _) => throw new HttpRequestException(HttpRequestError.ConnectionError, "refused");
        using (var response = await client.GetAsync($"http://{Service}/"))
        {
            response.EnsureSuccessStatusCode();
        }

        tracer.ForceFlush();
        var measurements = attempts.GetMeasurementSnapshot();
        Assert.All(measurements, m => Assert.Equal(Service, m.Tags[MeshTags.Service]));
        var byLocality = measurements.GroupBy(m => (string)m.Tags[MeshTags.Locality]!).ToDictionary(g => g.Key, g => g.Sum(m => m.Value));
        Assert.Equal(stub.Total, byLocality.Values.Sum());
        Assert.Equal(LocalCount(stub), byLocality["local"]);
        Assert.True(byLocality["remote"] >= 1);

        var meshSpans = spans.Where(s => s.Source.Name == MeshTelemetry.ActivitySourceName && (string?)s.GetTagItem(MeshTags.Service) == Service).ToList();
        Assert.Equal(21, meshSpans.Count);
        Assert.All(meshSpans.Take(20), s => Assert.Equal("local", s.GetTagItem(MeshTags.Locality)));
        Assert.Equal("remote", meshSpans[^1].GetTagItem(MeshTags.Locality)); // the attempt that answered
        Assert.Equal("zone-b", meshSpans[^1].GetTagItem(MeshTags.EndpointZone));

        // The calls are counted by the locality of the attempt that ended them.
        var callLocality = calls.GetMeasurementSnapshot().Where(m => (string?)m.Tags[MeshTags.Service] == Service).Select(m => (string?)m.Tags[MeshTags.Locality]).ToList();
        Assert.Equal(21, callLocality.Count);
        Assert.Equal(20, callLocality.Count(l => l == "local"));
        Assert.Equal("remote", callLocality[^1]);
    }

    [Fact]
    public async Task WithZoneRoutingOff_NoLocalityIsRecorded()
    {
        var spans = new List<Activity>();
        const string Service = "unzonedcatalog";
        var (host, _, _) = Create(tune: s => s["Mesh:ZoneRouting:Enabled"] = "false", services: s => s.AddOpenTelemetry().WithTracing(t => t.AddInMemoryExporter(spans)), service: Service);
        await using var _ = host;
        using var tracer = host.Services.GetRequiredService<TracerProvider>();
        using var attempts = new MetricCollector<long>(host.Services.GetRequiredService<IMeterFactory>(), MeshTelemetry.MeterName, "mesh.client.zone.attempts");
        using var calls = new MetricCollector<double>(host.Services.GetRequiredService<IMeterFactory>(), MeshTelemetry.MeterName, "mesh.client.request.duration");
        var client = host.CreateClient();
        for (var i = 0; i < 10; i++)
        {
            using var response = await client.GetAsync($"http://{Service}/");
        }

        tracer.ForceFlush();
        var meshSpans = spans.Where(s => s.Source.Name == MeshTelemetry.ActivitySourceName && (string?)s.GetTagItem(MeshTags.Service) == Service).ToList();
        Assert.Equal(10, meshSpans.Count);
        Assert.Empty(attempts.GetMeasurementSnapshot());
        Assert.All(meshSpans, s => Assert.Null(s.GetTagItem(MeshTags.Locality)));
        var callMeasurements = calls.GetMeasurementSnapshot().Where(m => (string?)m.Tags[MeshTags.Service] == Service).ToList();
        Assert.Equal(10, callMeasurements.Count);
        Assert.All(callMeasurements, m => Assert.False(m.Tags.ContainsKey(MeshTags.Locality)));
        var status = host.Services.GetRequiredService<IMeshStatus>();
        Assert.Equal(Zone, status.Zone);
        var catalog = Assert.Single(status.GetServices());
        Assert.Null(catalog.ZoneRouting);
        Assert.All(catalog.Endpoints, e => Assert.Null(e.Locality));
    }

    [Fact]
    public async Task Status_ShowsTheZoneTheSpillAndEachEndpointsLocality()
    {
        var (host, _, _) = Create();
        await using var _ = host;
        var client = host.CreateClient();
        for (var i = 0; i < 20; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
        }

        var status = host.Services.GetRequiredService<IMeshStatus>();
        Assert.Equal(Zone, status.Zone);
        var catalog = Assert.Single(status.GetServices());
        var zones = catalog.ZoneRouting!;
        Assert.Equal((Zone, true, 0.0, 2, 2), (zones.Zone, zones.Active, zones.Spill, zones.LocalEndpoints, zones.HealthyLocalEndpoints));
        Assert.Equal(["local", "local", "remote", "remote"], catalog.Endpoints.OrderBy(e => e.Address, StringComparer.Ordinal).Select(e => e.Locality));
        Assert.Equal(["zone-a", "zone-a", "zone-b", "zone-b"], catalog.Endpoints.OrderBy(e => e.Address, StringComparer.Ordinal).Select(e => e.Zone));
    }

    [Fact]
    public async Task ZoneBackUp_TakesItsCallsBackAfterTheEjection_AndRampsWithSlowStart()
    {
        var (host, stub, time) = Create(LoadBalancerNames.RoundRobin, s =>
        {
            s["Mesh:SlowStart:Window"] = "00:00:10";
            s["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
        });
        await using var _ = host;
        var client = host.CreateClient();
        var status = host.Services.GetRequiredService<IMeshStatus>();
        await SendAsync(client, 40);
        Assert.Equal(40, LocalCount(stub));

        // The zone goes down: its endpoints refuse connections and are ejected as unreachable; no call fails.
        foreach (var authority in new[] { "10.0.0.1:8080", "10.0.0.2:8080" })
        {
            stub.Behaviors[authority] = (_, _) => throw new HttpRequestException(HttpRequestError.ConnectionError, "refused");
        }

        await SendAsync(client, 40);
        await Eventually.TrueAsync(() => Catalog(status).ZoneRouting!.HealthyLocalEndpoints == 0, TimeSpan.FromSeconds(5), "the zone's endpoints are ejected");
        stub.Reset();
        await SendAsync(client, 100);
        Assert.Equal(0, LocalCount(stub));
        Assert.Equal(1.0, Catalog(status).ZoneRouting!.Spill);

        // Back up, but still ejected (UnreachableEjectionTime, 1 s): no call goes there before the ejection ends.
        stub.Behaviors.Clear();
        await SendAsync(client, 100);
        Assert.Equal(0, LocalCount(stub));

        // The ejection ends: each endpoint takes one probe among all endpoints, then is readmitted at 10% of its weight.
        await FakeTime.AdvanceUntilAsync(time, () => Catalog(status).Endpoints.All(e => e.State != "unreachable"), TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5));
        // (A readmission's snapshot is published by a thread-pool work item: on a busy machine, calls go on meanwhile.)
        await Eventually.TrueAsync(
            async () =>
            {
                await SendAsync(client, 4);
                return Catalog(status).ZoneRouting!.HealthyLocalEndpoints == 2;
            },
            TimeSpan.FromSeconds(10),
            "both endpoints of the zone are probed and readmitted");
        var rampStart = await LocalShareAsync(client, stub);
        Assert.InRange(rampStart, 0.05, 0.25); // 10% of the zone's weight stays, 90% is spread over all four (10%, 10%, 100%, 100%)

        await AdvanceAsync(time, TimeSpan.FromSeconds(5));
        var halfway = await LocalShareAsync(client, stub);
        Assert.InRange(halfway, 0.5, 0.8); // 50% stays, 50% over all: 0.5 + 0.5 × 1/3

        await AdvanceAsync(time, TimeSpan.FromSeconds(6));
        var ramped = await LocalShareAsync(client, stub);
        output.WriteLine($"local share: {rampStart:P1} at the start of the slow-start window, {halfway:P1} half-way, {ramped:P1} after it");
        Assert.True(ramped >= 0.99, $"after the slow-start window {ramped:P1} of the calls were local");
        Assert.Equal(0.0, Catalog(status).ZoneRouting!.Spill);
    }

    private static MeshServiceStatus Catalog(IMeshStatus status) => status.GetServices().Single(s => s.Name == "catalog");

    private static async Task AdvanceAsync(Microsoft.Extensions.Time.Testing.FakeTimeProvider time, TimeSpan by)
    {
        for (var t = TimeSpan.Zero; t < by; t += TimeSpan.FromMilliseconds(500))
        {
            time.Advance(TimeSpan.FromMilliseconds(500));
            await Task.Delay(5); // the slow-start rebuilds run on the timer
        }
    }

    private static async Task<double> LocalShareAsync(HttpClient client, StubEndpoints stub)
    {
        stub.Reset();
        await SendAsync(client, 1000);
        return LocalCount(stub) / (double)stub.Total;
    }

    private static async Task SendAsync(HttpClient client, int count)
    {
        for (var i = 0; i < count; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
            response.EnsureSuccessStatusCode();
        }
    }
}
