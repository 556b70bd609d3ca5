
using MeshClient.Configuration;

namespace MeshClient.Resilience;

/// <summary>
/// The effective resilience settings of one service: per-service values, then global values, then defaults.
/// </summary>
internal sealed record ResilienceSettings
{
    public static readonly ResilienceSettings Defaults = new();

    public int ConsecutiveFailures { get; init; } = 5;

    public int FailurePercentageThreshold { get; init; } = 50;

    public int FailurePercentageMinimumRequests { get; init; } = 20;

    public TimeSpan FailurePercentageWindow { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan BaseEjectionTime { get; init; } = TimeSpan.FromSeconds(30);

    public TimeSpan MaxEjectionTime { get; init; } = TimeSpan.FromSeconds(300);

    public TimeSpan UnreachableEjectionTime { get; init; } = TimeSpan.FromSeconds(1);

    public int MaxEjectionPercent { get; init; } = 10;

    public int PanicThresholdPercent { get; init; } = 50;

    public int MaxRetries { get; init; } = 2;

    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromMilliseconds(25);

    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    public int RetryBudgetPercent { get; init; } = 20;

    public int RetryBudgetMinPerSecond { get; init; } = 10;

    public TimeSpan RetryBudgetWindow { get; init; } = TimeSpan.FromSeconds(10);

    public bool RetryNonIdempotent { get; init; }

    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan TotalTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(1);

    public static ResilienceSettings Resolve(MeshResilienceOptions? global, MeshResilienceOptions? service)
    {
        var d = Defaults;
        var settings = new ResilienceSettings
        {
            ConsecutiveFailures = service?.ConsecutiveFailures ?? global?.ConsecutiveFailures ?? d.ConsecutiveFailures,
            FailurePercentageThreshold = service?.FailurePercentageThreshold ?? global?.FailurePercentageThreshold ?? d.FailurePercentageThreshold,
            FailurePercentageMinimumRequests = service?.FailurePercentageMinimumRequests ?? global?.FailurePercentageMinimumRequests ?? d.FailurePercentageMinimumRequests,
            FailurePercentageWindow = service?.FailurePercentageWindow ?? global?.FailurePercentageWindow ?? d.FailurePercentageWindow,
            BaseEjectionTime = service?.BaseEjectionTime ?? global?.BaseEjectionTime ?? d.BaseEjectionTime,
            MaxEjectionTime = service?.MaxEjectionTime ?? global?.MaxEjectionTime ?? d.MaxEjectionTime,
            UnreachableEjectionTime = service?.UnreachableEjectionTime ?? global?.UnreachableEjectionTime ?? d.UnreachableEjectionTime,
            MaxEjectionPercent = service?.MaxEjectionPercent ?? global?.MaxEjectionPercent ?? d.MaxEjectionPercent,
            PanicThresholdPercent = service?.PanicThresholdPercent ?? global?.PanicThresholdPercent ?? d.PanicThresholdPercent,
            MaxRetries = service?.MaxRetries ?? global?.MaxRetries ?? d.MaxRetries,
            RetryBaseDelay = service?.RetryBaseDelay ?? global?.RetryBaseDelay ?? d.RetryBaseDelay,
            RetryMaxDelay = service?.RetryMaxDelay ?? global?.RetryMaxDelay ?? d.RetryMaxDelay,
            RetryBudgetPercent = service?.RetryBudgetPercent ?? global?.RetryBudgetPercent ?? d.RetryBudgetPercent,
            RetryBudgetMinPerSecond = service?.RetryBudgetMinPerSecond ?? global?.RetryBudgetMinPerSecond ?? d.RetryBudgetMinPerSecond,
            RetryBudgetWindow = service?.RetryBudgetWindow ?? global?.RetryBudgetWindow ?? d.RetryBudgetWindow,
            RetryNonIdempotent = service?.RetryNonIdempotent ?? global?.RetryNonIdempotent ?? d.RetryNonIdempotent,
            AttemptTimeout = service?.AttemptTimeout ?? global?.AttemptTimeout ?? d.AttemptTimeout,
            TotalTimeout = service?.TotalTimeout ?? global?.TotalTimeout ?? d.TotalTimeout,
            ConnectTimeout = service?.ConnectTimeout ?? global?.ConnectTimeout ?? d.ConnectTimeout,
        };

        // Like Envoy: the cap is at least the base, and an attempt never outlives its call (nor a connect its attempt).
        var attemptTimeout = settings.AttemptTimeout > settings.TotalTimeout ? settings.TotalTimeout : settings.AttemptTimeout;
        return settings with
        {
            ConnectTimeout = settings.ConnectTimeout > attemptTimeout ? attemptTimeout : settings.ConnectTimeout,
            MaxEjectionTime = settings.MaxEjectionTime < settings.BaseEjectionTime ? settings.BaseEjectionTime : settings.MaxEjectionTime,
            AttemptTimeout = attemptTimeout,
        };
    }
}
