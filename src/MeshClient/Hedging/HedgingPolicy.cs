using MeshClient.Resilience;
using MeshClient.Telemetry;

namespace MeshClient.Hedging;

/// <summary>
/// The hedging of one service (or of one route's calls to one backend, when the route has hedging settings of its own): its settings, its hedge budget (a <see cref="RetryBudget"/> of its own: hedges may add
/// at most <c>BudgetPercent</c> of the hedgeable requests plus <c>BudgetMinPerSecond</c>), and, for the adaptive delay,
/// its latency estimate. The budget and the estimate outlive a reload of the options (<see cref="HedgingRegistry"/>).
/// </summary>
internal sealed class HedgingPolicy
{
    private readonly long _refreshTicks;
    private long _delayTicks;
    private long _delayComputedAt = long.MinValue;

    public HedgingPolicy(string serviceName, string? routeName, HedgingSettings settings, RetryBudget budget, LatencyHistogram? latency, TimeProvider time, MeshInstrumentation telemetry)
    {
        ServiceName = serviceName;
        RouteName = routeName;
        Settings = settings;
        Budget = budget;
        Latency = latency;
        Time = time;
        Telemetry = telemetry;
        ServiceTag = new KeyValuePair<string, object?>(MeshTags.Service, serviceName);
        _refreshTicks = (long)(HedgingSettings.DelayRefresh.TotalSeconds * time.TimestampFrequency);
        _delayTicks = ToTicks(settings.Delay);
    }

    /// <summary>Gets the service whose endpoints the hedges go to (a routed call's backend).</summary>
    public string ServiceName { get; }

    /// <summary>Gets the route whose own hedging this is, or <see langword="null"/> for a service's.</summary>
    public string? RouteName { get; }

    public HedgingSettings Settings { get; }

    /// <summary>Gets the hedge budget: one request per hedgeable try, one withdrawal per hedge sent.</summary>
    public RetryBudget Budget { get; }

    /// <summary>Gets the service's latency estimate, when the delay is adaptive (<c>Percentile</c>).</summary>
    public LatencyHistogram? Latency { get; }

    public TimeProvider Time { get; }

    public MeshInstrumentation Telemetry { get; }

    public KeyValuePair<string, object?> ServiceTag { get; }

    /// <summary>
    /// The hedge delay at <paramref name="now"/>: the fixed <c>Delay</c>, or the service's latency at <c>Percentile</c>
    /// bounded by <c>MinDelay</c> and <c>MaxDelay</c> (the fixed delay until the estimate has enough answers), computed
    /// again at most once every <see cref="HedgingSettings.DelayRefresh"/>. Lock-free: racing refreshes compute the same.
    /// </summary>
    public TimeSpan Delay(long now)
    {
        if (Latency is null || Settings.Percentile is not { } percentile)
        {
            return Settings.Delay;
        }

        var computedAt = Volatile.Read(ref _delayComputedAt);
        if (computedAt != long.MinValue && now - computedAt < _refreshTicks)
        {
            return FromTicks(Volatile.Read(ref _delayTicks));
        }

        var delay = Latency.Percentile(percentile, HedgingSettings.MinLatencySamples, now) is { } observed
            ? TimeSpan.FromTicks(Math.Clamp(observed.Ticks, Settings.MinDelay.Ticks, Settings.MaxDelay.Ticks))
            : Settings.Delay;
        Volatile.Write(ref _delayTicks, ToTicks(delay));
        Volatile.Write(ref _delayComputedAt, now);
        return delay;
    }

    /// <summary>Records how long a hedgeable try's first attempt took to its answer, when the delay is adaptive.</summary>
    public void RecordAnswer(long start, long now) => Latency?.Record(now - start, now);

    /// <summary>
    /// Records a first attempt that a hedge's answer outlasted (it was cancelled unanswered), when the delay is adaptive:
    /// as slower than every answer. Its time at cancellation would be the hedge delay plus the hedge's answer time, so a
    /// delay estimated from it would be estimated from itself, and stay wherever it started (a percentile that lies in
    /// the slow tail settled near the initial 50 ms); counted as slower than everything, it only tells what it knows.
    /// </summary>
    public void RecordOutlasted(long now) => Latency?.RecordBeyond(now);

    private long ToTicks(TimeSpan delay) => (long)(delay.TotalSeconds * Time.TimestampFrequency);

    private TimeSpan FromTicks(long ticks) => TimeSpan.FromSeconds(ticks / (double)Time.TimestampFrequency);
}
