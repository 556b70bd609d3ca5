using System.Diagnostics.Metrics;
using System.Net;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Telemetry;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace MeshClient.Tests.Telemetry;

/// <summary>Metric values asserted with MetricCollector, on the meter the mesh creates through IMeterFactory.</summary>
public sealed class MetricsTests
{
    private static MetricCollector<T> Collect<T>(MeshHost host, string instrument)
        where T : struct =>
        new(host.Services.GetRequiredService<IMeterFactory>(), MeshTelemetry.MeterName, instrument);

    [Fact]
    public async Task CallsRetriesEjectionsAndEndpoints_AreMeasured_ByService()
    {
        await using var backends = await Backends.StartAsync(4);
        backends[3].Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };
        await using var host = MeshHost.Create(MeshHost.ServiceSettings("catalog", LoadBalancerNames.RoundRobin, backends.WithWeight(1)));
        using var duration = Collect<double>(host, "mesh.client.request.duration");
        using var attempts = Collect<long>(host, "mesh.client.attempts");
        using var retries = Collect<long>(host, "mesh.client.retries");
        using var ejections = Collect<long>(host, "mesh.client.endpoint.ejections");
        using var endpoints = Collect<long>(host, "mesh.client.endpoints");
        using var active = Collect<long>(host, "mesh.client.active_requests");
        using var updates = Collect<long>(host, "mesh.client.discovery.updates");
        var client = host.CreateClient();

        for (var i = 0; i < 40; i++)
        {
            using var response = await client.GetAsync("http://catalog/items");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var calls = duration.GetMeasurementSnapshot();
        Assert.Equal(40, calls.Count);
        Assert.All(calls, m =>
        {
            Assert.Equal("catalog", m.Tags[MeshTags.Service]);
            Assert.Equal("success", m.Tags[MeshTags.Outcome]);
            Assert.InRange(m.Value, 0, 10);
        });
        Assert.Equal(5, retries.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.All(retries.GetMeasurementSnapshot(), m => Assert.Equal("status_5xx", m.Tags[MeshTags.RetryReason]));
        Assert.Equal(45, attempts.GetMeasurementSnapshot().Sum(m => m.Value));
        var ejection = Assert.Single(ejections.GetMeasurementSnapshot());
        Assert.Equal("consecutive_failures", ejection.Tags[MeshTags.EjectionReason]);
        Assert.Equal(0, active.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal(1, updates.GetMeasurementSnapshot().Sum(m => m.Value));

        endpoints.RecordObservableInstruments();
        var byState = endpoints.GetMeasurementSnapshot().Where(m => (string?)m.Tags[MeshTags.Service] == "catalog")
            .ToDictionary(m => (string)m.Tags[MeshTags.EndpointState]!, m => m.Value);
        Assert.Equal(3, byState["healthy"]);
        Assert.Equal(1, byState["ejected"]);
        Assert.Equal(0, byState["probing"]);

        // Low cardinality: no instrument carries an address.
        Assert.DoesNotContain(calls.SelectMany(m => m.Tags.Values), v => v is string s && s.Contains("127.0.0.1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RetryBudgetExhaustion_IsCounted()
    {
        await using var backends = await Backends.StartAsync(2);
        foreach (var backend in backends)
        {
            backend.Behavior = ctx => { ctx.Response.StatusCode = 503; return Task.CompletedTask; };
        }

        var settings = MeshHost.ServiceSettings("catalog", null, backends.WithWeight(1));
        settings["Mesh:Resilience:RetryBudgetPercent"] = "0";
        settings["Mesh:Resilience:RetryBudgetMinPerSecond"] = "0";
        settings["Mesh:Resilience:ConsecutiveFailures"] = "0";
        await using var host = MeshHost.Create(settings);
        using var exhausted = Collect<long>(host, "mesh.client.retry_budget.exhausted");

        for (var i = 0; i < 5; i++)
        {
            (await host.CreateClient().GetAsync("http://catalog/")).Dispose();
        }

        Assert.Equal(5, exhausted.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal(5, backends.Sum(b => b.Count));
    }
}
