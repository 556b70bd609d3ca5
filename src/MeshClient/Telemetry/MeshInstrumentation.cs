using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace MeshClient.Telemetry;

/// <summary>
/// The mesh's <see cref="ActivitySource"/> and instruments. A leaf: everyone records through it, it calls no one.
/// The meter comes from <see cref="IMeterFactory"/>, so each service provider (and each test) has its own.
/// </summary>
internal sealed class MeshInstrumentation : IDisposable
{
    private static readonly string? Version = typeof(MeshInstrumentation).Assembly.GetName().Version?.ToString();

    /// <summary>The mesh's activity source (static: activity sources are process-wide by design).</summary>
    public static readonly ActivitySource Source = new(new ActivitySourceOptions(MeshTelemetry.ActivitySourceName) { Version = Version });

    private static readonly double[] DurationBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

    private readonly Meter _meter;
    private Func<IEnumerable<Measurement<long>>>? _endpoints;
    private Func<IEnumerable<Measurement<double>>>? _hedgeDelays;

    public MeshInstrumentation(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(new MeterOptions(MeshTelemetry.MeterName) { Version = Version });
        RequestDuration = _meter.CreateHistogram(
            "mesh.client.request.duration", "s", "Duration of logical calls through the mesh, retries included.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        ActiveRequests = _meter.CreateUpDownCounter<long>("mesh.client.active_requests", "{request}", "Logical calls in flight through the mesh.");
        Attempts = _meter.CreateCounter<long>("mesh.client.attempts", "{attempt}", "Attempts sent to endpoints (first tries and retries).");
        Retries = _meter.CreateCounter<long>("mesh.client.retries", "{retry}", "Retries, by reason.");
        ZoneAttempts = _meter.CreateCounter<long>("mesh.client.zone.attempts", "{attempt}", "Attempts of services with zone routing on, by locality (local, remote).");
        RetryBudgetExhausted = _meter.CreateCounter<long>("mesh.client.retry_budget.exhausted", "{retry}", "Retries refused by the retry budget.");
        Hedges = _meter.CreateCounter<long>("mesh.client.hedges", "{hedge}", "Hedged attempts sent, by which attempt answered (first, hedge, none).");
        HedgeBudgetExhausted = _meter.CreateCounter<long>("mesh.client.hedge_budget.exhausted", "{hedge}", "Hedges refused by the hedge budget.");
        Ejections = _meter.CreateCounter<long>("mesh.client.endpoint.ejections", "{ejection}", "Endpoints ejected by outlier detection, by reason.");
        DiscoveryUpdates = _meter.CreateCounter<long>("mesh.client.discovery.updates", "{update}", "Changes of a service's endpoint set.");
        DiscoveryErrors = _meter.CreateCounter<long>("mesh.client.discovery.errors", "{error}", "Failed discovery refreshes (the last known endpoints keep serving).");
        _meter.CreateObservableGauge("mesh.client.endpoints", () => _endpoints?.Invoke() ?? [], "{endpoint}", "Endpoints per service and state (healthy, ejected, probing).");
        _meter.CreateObservableGauge("mesh.client.hedge.delay", () => _hedgeDelays?.Invoke() ?? [], "s", "The hedge delay in force, per hedging service (the adaptive one as last estimated).");
    }

    public Histogram<double> RequestDuration { get; }

    public UpDownCounter<long> ActiveRequests { get; }

    public Counter<long> Attempts { get; }

    public Counter<long> Retries { get; }

    /// <summary>Gets the attempts of services with zone routing on, tagged with <see cref="MeshTags.Locality"/>.</summary>
    public Counter<long> ZoneAttempts { get; }

    public Counter<long> RetryBudgetExhausted { get; }

    public Counter<long> Hedges { get; }

    public Counter<long> HedgeBudgetExhausted { get; }

    public Counter<long> Ejections { get; }

    public Counter<long> DiscoveryUpdates { get; }

    public Counter<long> DiscoveryErrors { get; }

    /// <summary>Sets the source of the endpoint gauge (the owner of the endpoint tables).</summary>
    public void ObserveEndpoints(Func<IEnumerable<Measurement<long>>> observe) => _endpoints = observe;

    /// <summary>Sets the source of the hedge delay gauge (the owner of the hedging policies).</summary>
    public void ObserveHedgeDelays(Func<IEnumerable<Measurement<double>>> observe) => _hedgeDelays = observe;

    /// <summary>Adds an event to the mesh's span of the current call, if it is being recorded.</summary>
    public static void AddEvent(string name, string tagName, object? tagValue)
    {
        var activity = Activity.Current;
        if (activity is { IsAllDataRequested: true } && ReferenceEquals(activity.Source, Source))
        {
            activity.AddEvent(new ActivityEvent(name, tags: new ActivityTagsCollection { [tagName] = tagValue }));
        }
    }

    /// <summary>Sets a tag on the mesh's span of the current call, if it is being recorded (no allocation otherwise).</summary>
    public static void SetTag(string name, string value)
    {
        var activity = Activity.Current;
        if (activity is { IsAllDataRequested: true } && ReferenceEquals(activity.Source, Source))
        {
            activity.SetTag(name, value);
        }
    }

    public void Dispose() => _meter.Dispose();
}
