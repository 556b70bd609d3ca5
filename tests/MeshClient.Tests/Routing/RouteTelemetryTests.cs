using System.Diagnostics;
using System.Diagnostics.Metrics;
using MeshClient.Telemetry;
using MeshClient.Tests.Infrastructure;
using MeshClient.Tests.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace MeshClient.Tests.Routing;

/// <summary>
/// A routed call's span carries <c>mesh.route</c> and <c>mesh.backend</c>, and its metrics the same two tags (the
/// configured names only); a call to a service without routes carries neither.
/// </summary>
[Collection(TracingGroup.Name)]
public sealed class RouteTelemetryTests
{
    [Fact]
    public async Task RoutedCall_SpanAndMetrics_CarryRouteAndBackend_AServiceWithoutRoutesNeither()
    {
        await using var mesh = await RoutedMesh.StartAsync(1, 1, RoutedMesh.Split(0, 1, name: "canary"));
        var spans = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == MeshTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (spans) { spans.Add(a); } },
        };
        ActivitySource.AddActivityListener(listener);
        var meters = mesh.Host.Services.GetRequiredService<IMeterFactory>();
        using var duration = new MetricCollector<double>(meters, MeshTelemetry.MeterName, "mesh.client.request.duration");
        using var attempts = new MetricCollector<long>(meters, MeshTelemetry.MeterName, "mesh.client.attempts");
        var client = mesh.Client;

        (await client.GetAsync("http://catalog/items")).EnsureSuccessStatusCode();
        (await client.GetAsync("http://catalog-v1/items")).EnsureSuccessStatusCode();

        Activity routed, direct;
        lock (spans)
        {
            // The listener hears every test's calls: these two are known by their endpoints' ports.
            routed = spans.Single(s => (string?)s.GetTagItem(MeshTags.EndpointId) == mesh.V2[0].Address.GetLeftPart(UriPartial.Path));
            direct = spans.Single(s => (string?)s.GetTagItem(MeshTags.EndpointId) == mesh.V1[0].Address.GetLeftPart(UriPartial.Path));
        }

        Assert.Equal("catalog", routed.GetTagItem(MeshTags.Service));
        Assert.Equal("canary", routed.GetTagItem(MeshTags.Route));
        Assert.Equal("catalog-v2", routed.GetTagItem(MeshTags.Backend));
        Assert.Equal("catalog", routed.DisplayName);
        Assert.Equal("catalog-v1", direct.DisplayName);
        Assert.Null(direct.GetTagItem(MeshTags.Route));
        Assert.Null(direct.GetTagItem(MeshTags.Backend));

        var calls = duration.GetMeasurementSnapshot();
        var routedCall = Assert.Single(calls, m => (string?)m.Tags[MeshTags.Service] == "catalog");
        Assert.Equal("canary", routedCall.Tags[MeshTags.Route]);
        Assert.Equal("catalog-v2", routedCall.Tags[MeshTags.Backend]);
        var directCall = Assert.Single(calls, m => (string?)m.Tags[MeshTags.Service] == "catalog-v1");
        Assert.False(directCall.Tags.ContainsKey(MeshTags.Route));
        Assert.False(directCall.Tags.ContainsKey(MeshTags.Backend));
        var routedAttempts = Assert.Single(attempts.GetMeasurementSnapshot(), m => (string?)m.Tags[MeshTags.Service] == "catalog");
        Assert.Equal("catalog-v2", routedAttempts.Tags[MeshTags.Backend]);
    }

    [Fact]
    public async Task NoMatchingRoute_IsRecordedAsAFailedCall()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Routes:0:Match:Method"] = "POST",
            ["Mesh:Services:catalog:Routes:0:Backends:0:Service"] = "catalog-v1",
        };
        await using var mesh = await RoutedMesh.StartAsync(1, 0, settings);
        using var duration = new MetricCollector<double>(mesh.Host.Services.GetRequiredService<IMeterFactory>(), MeshTelemetry.MeterName, "mesh.client.request.duration");

        await Assert.ThrowsAsync<NoMatchingRouteException>(() => mesh.Client.GetAsync("http://catalog/"));

        var call = Assert.Single(duration.GetMeasurementSnapshot());
        Assert.Equal("failure", call.Tags[MeshTags.Outcome]);
        Assert.Equal(typeof(NoMatchingRouteException).FullName, call.Tags[MeshTags.ErrorType]);
        Assert.False(call.Tags.ContainsKey(MeshTags.Route));
    }
}
