using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using MeshClient.Balancing;
using MeshClient.Consul;
using MeshClient.Discovery;
using MeshClient.Model;
using MeshClient.Resilience;
using MeshClient.Telemetry;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Tests.Leaks;

/// <summary>Leak tests measure managed memory: they run alone, after the parallel tests.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LeakGroup
{
    public const string Name = "Leaks";
}

/// <summary>
/// What a mesh holds that could grow with endpoint churn, measured at one moment: tables, per-endpoint state,
/// outlier-detection state and ejection timers, resilience entries, Consul watches, metric instruments and the
/// endpoint gauge's measurements, live timers by kind, change-token registrations, and managed memory after a
/// full collection.
/// </summary>
internal sealed record LeakFigures(
    int Tables,
    int EndpointStates,
    int Health,
    int EjectionTimers,
    int ChangeRegistrations,
    int OptionsTokenLinks,
    int Pipelines,
    int ConsulWatches,
    int Instruments,
    int MeshInstruments,
    int GaugeMeasurements,
    int LiveTimers,
    IReadOnlyDictionary<string, int> TimersByKind,
    long ManagedBytes)
{
    public static LeakFigures Measure(MeshHost host, CountingTimeProvider time)
    {
        var registry = host.Registry;
        var services = host.Services;
        var tables = registry.Tables.ToArray();
        var factory = services.GetRequiredService<IMeterFactory>();
        int instruments = 0, meshInstruments = 0, gauge = 0;
        using (var listener = new MeterListener())
        {
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (!ReferenceEquals(instrument.Meter.Scope, factory))
                {
                    return;
                }

                instruments++;
                if (instrument.Meter.Name == MeshTelemetry.MeterName)
                {
                    meshInstruments++;
                    if (instrument.Name == "mesh.client.endpoints")
                    {
                        l.EnableMeasurementEvents(instrument);
                    }
                }
            };
            listener.SetMeasurementEventCallback<long>((_, _, _, _) => gauge++);
            listener.Start();
            listener.RecordObservableInstruments();
        }

        var memory = CollectAndMeasure();
        return new LeakFigures(
            tables.Length,
            tables.Sum(t => t.States.Count),
            tables.Sum(t => t.States.Count(s => s.Health is not null)),
            ((OutlierDetector)services.GetRequiredService<IEndpointHealthObserver>()).EjectionTimers,
            tables.Sum(t => t.ChangeRegistrations),
            services.GetServices<IServiceEndpointProviderFactory>().OfType<MeshConfigurationEndpointProviderFactory>().Single().OptionsTokenLinks,
            services.GetRequiredService<ResilienceRegistry>().Count,
            services.GetService<ConsulCatalogCache>()?.Count ?? 0,
            instruments,
            meshInstruments,
            gauge,
            time.Live,
            time.LiveByKind(),
            memory);
    }

    public static long CollectAndMeasure()
    {
        for (var i = 0; i < 3; i++)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }

        return GC.GetTotalMemory(forceFullCollection: true);
    }

    /// <summary>A two-column table of the figures before and after, for the test output.</summary>
    public static string Compare(LeakFigures before, LeakFigures after)
    {
        var text = new StringBuilder();
        void Row(string name, object a, object b) => text.AppendLine(CultureInfo.InvariantCulture, $"{name,-46} {a,14} {b,14}");
        Row("figure", "baseline", "after churn");
        Row("service tables", before.Tables, after.Tables);
        Row("EndpointState objects (all tables)", before.EndpointStates, after.EndpointStates);
        Row("outlier-detection data (EndpointState.Health)", before.Health, after.Health);
        Row("ejection timers (OutlierDetector)", before.EjectionTimers, after.EjectionTimers);
        Row("change-token registrations (tables)", before.ChangeRegistrations, after.ChangeRegistrations);
        Row("options-token links (Mesh:Services providers)", before.OptionsTokenLinks, after.OptionsTokenLinks);
        Row("service resilience entries (ResilienceRegistry)", before.Pipelines, after.Pipelines);
        Row("Consul watches", before.ConsulWatches, after.ConsulWatches);
        Row("metric instruments (host meter factory)", before.Instruments, after.Instruments);
        Row("  of which MeshClient", before.MeshInstruments, after.MeshInstruments);
        Row("endpoint gauge measurements", before.GaugeMeasurements, after.GaugeMeasurements);
        Row("live timers (created, not disposed)", before.LiveTimers, after.LiveTimers);
        foreach (var kind in before.TimersByKind.Keys.Union(after.TimersByKind.Keys).Order(StringComparer.Ordinal))
        {
            Row("  " + kind, before.TimersByKind.GetValueOrDefault(kind), after.TimersByKind.GetValueOrDefault(kind));
        }

        Row("managed bytes after full GC", before.ManagedBytes.ToString("N0", CultureInfo.InvariantCulture), after.ManagedBytes.ToString("N0", CultureInfo.InvariantCulture));
        Row("  difference", string.Empty, (after.ManagedBytes - before.ManagedBytes).ToString("N0", CultureInfo.InvariantCulture));
        return text.ToString();
    }

    /// <summary>Asserts that every count is back at its baseline and that memory grew by less than <paramref name="maxGrowth"/>.</summary>
    public static void AssertBaseline(LeakFigures before, LeakFigures after, long maxGrowth)
    {
        Assert.Equal(before.Tables, after.Tables);
        Assert.Equal(before.EndpointStates, after.EndpointStates);
        Assert.Equal(before.Health, after.Health);
        Assert.Equal(before.EjectionTimers, after.EjectionTimers);
        Assert.Equal(before.ChangeRegistrations, after.ChangeRegistrations);
        Assert.Equal(before.OptionsTokenLinks, after.OptionsTokenLinks);
        Assert.Equal(before.Pipelines, after.Pipelines);
        Assert.Equal(before.ConsulWatches, after.ConsulWatches);
        Assert.Equal(before.Instruments, after.Instruments);
        Assert.Equal(before.MeshInstruments, after.MeshInstruments);
        Assert.Equal(before.GaugeMeasurements, after.GaugeMeasurements);
        Assert.Equal(before.TimersByKind, after.TimersByKind);
        Assert.Equal(before.LiveTimers, after.LiveTimers);
        Assert.True(after.ManagedBytes - before.ManagedBytes < maxGrowth, $"Managed memory grew by {after.ManagedBytes - before.ManagedBytes:N0} bytes (limit {maxGrowth:N0}).");
    }
}
