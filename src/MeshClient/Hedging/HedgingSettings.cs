using MeshClient.Configuration;

namespace MeshClient.Hedging;

/// <summary>
/// The effective hedging settings of one service (or one route): each value from the most specific layer that
/// sets it, then the defaults of <see cref="MeshHedgingOptions"/>.
/// </summary>
internal sealed record HedgingSettings
{
    /// <summary>The window of the hedge budget (as the retry budget's default).</summary>
    public static readonly TimeSpan BudgetWindow = TimeSpan.FromSeconds(10);

    /// <summary>The length of each of the two windows of the latency estimate: the percentile covers the last 10 to 20 s.</summary>
    public static readonly TimeSpan LatencyWindow = TimeSpan.FromSeconds(10);

    /// <summary>How often the adaptive delay is computed again from the latency estimate.</summary>
    public static readonly TimeSpan DelayRefresh = TimeSpan.FromSeconds(1);

    /// <summary>The answers the latency estimate needs before the adaptive delay replaces the fixed one.</summary>
    public const int MinLatencySamples = 50;

    public static readonly HedgingSettings Disabled = new();

    public bool Enabled { get; init; }

    public TimeSpan Delay { get; init; } = MeshHedgingOptions.DefaultDelay;

    public int MaxAttempts { get; init; } = MeshHedgingOptions.DefaultMaxAttempts;

    public double? Percentile { get; init; }

    public TimeSpan MinDelay { get; init; } = MeshHedgingOptions.DefaultMinDelay;

    public TimeSpan MaxDelay { get; init; } = MeshHedgingOptions.DefaultMaxDelay;

    public int BudgetPercent { get; init; } = MeshHedgingOptions.DefaultBudgetPercent;

    public int BudgetMinPerSecond { get; init; } = MeshHedgingOptions.DefaultBudgetMinPerSecond;

    /// <summary>Whether <paramref name="options"/> sets any value (a route's section that sets none leaves its calls to their backend's hedging).</summary>
    public static bool IsSet(MeshHedgingOptions options) =>
        options.Enabled is not null || options.Delay is not null || options.MaxAttempts is not null || options.Percentile is not null
        || options.MinDelay is not null || options.MaxDelay is not null || options.BudgetPercent is not null || options.BudgetMinPerSecond is not null;

    /// <summary>
    /// Resolves the settings from the global options, a service's and a route's: the most specific value set wins,
    /// field by field, as for the other resilience settings.
    /// </summary>
    public static HedgingSettings Resolve(MeshHedgingOptions? global, MeshHedgingOptions? service, MeshHedgingOptions? route = null)
    {
        var d = new HedgingSettings();
        var settings = new HedgingSettings
        {
            Enabled = route?.Enabled ?? service?.Enabled ?? global?.Enabled ?? d.Enabled,
            Delay = route?.Delay ?? service?.Delay ?? global?.Delay ?? d.Delay,
            MaxAttempts = route?.MaxAttempts ?? service?.MaxAttempts ?? global?.MaxAttempts ?? d.MaxAttempts,
            Percentile = route?.Percentile ?? service?.Percentile ?? global?.Percentile,
            MinDelay = route?.MinDelay ?? service?.MinDelay ?? global?.MinDelay ?? d.MinDelay,
            MaxDelay = route?.MaxDelay ?? service?.MaxDelay ?? global?.MaxDelay ?? d.MaxDelay,
            BudgetPercent = route?.BudgetPercent ?? service?.BudgetPercent ?? global?.BudgetPercent ?? d.BudgetPercent,
            BudgetMinPerSecond = route?.BudgetMinPerSecond ?? service?.BudgetMinPerSecond ?? global?.BudgetMinPerSecond ?? d.BudgetMinPerSecond,
        };

        // Only a contradiction written at one level fails validation; bounds set at different levels adapt.
        return settings.MinDelay > settings.MaxDelay ? settings with { MinDelay = settings.MaxDelay } : settings;
    }
}
