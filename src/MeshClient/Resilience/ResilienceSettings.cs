using MeshClient.Internal;

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

    /// <summary>Checks one set of options (global or per service), naming the keys under <paramref name="prefix"/>.</summary>
    public static void Validate(List<string> failures, string prefix, MeshResilienceOptions? options)
    {
        if (options is null)
        {
            return;
        }

        Range(failures, prefix, nameof(options.ConsecutiveFailures), options.ConsecutiveFailures, 0, 1000);
        Range(failures, prefix, nameof(options.FailurePercentageThreshold), options.FailurePercentageThreshold, 0, 100);
        Range(failures, prefix, nameof(options.FailurePercentageMinimumRequests), options.FailurePercentageMinimumRequests, 1, 100_000);
        Range(failures, prefix, nameof(options.MaxEjectionPercent), options.MaxEjectionPercent, 0, 100);
        Range(failures, prefix, nameof(options.PanicThresholdPercent), options.PanicThresholdPercent, 0, 100);
        Range(failures, prefix, nameof(options.MaxRetries), options.MaxRetries, 0, 10);
        Range(failures, prefix, nameof(options.RetryBudgetPercent), options.RetryBudgetPercent, 0, 1000);
        Range(failures, prefix, nameof(options.RetryBudgetMinPerSecond), options.RetryBudgetMinPerSecond, 0, 100_000);
        Range(failures, prefix, nameof(options.FailurePercentageWindow), options.FailurePercentageWindow, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10));
        Range(failures, prefix, nameof(options.BaseEjectionTime), options.BaseEjectionTime, TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(1));
        Range(failures, prefix, nameof(options.MaxEjectionTime), options.MaxEjectionTime, TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(1));
        Range(failures, prefix, nameof(options.UnreachableEjectionTime), options.UnreachableEjectionTime, TimeSpan.FromMilliseconds(10), TimeSpan.FromHours(1));
        Range(failures, prefix, nameof(options.RetryBaseDelay), options.RetryBaseDelay, TimeSpan.Zero, TimeSpan.FromMinutes(1));
        Range(failures, prefix, nameof(options.RetryMaxDelay), options.RetryMaxDelay, TimeSpan.Zero, TimeSpan.FromMinutes(5));
        Range(failures, prefix, nameof(options.RetryBudgetWindow), options.RetryBudgetWindow, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10));
        Range(failures, prefix, nameof(options.AttemptTimeout), options.AttemptTimeout, TimeSpan.FromMilliseconds(10), TimeSpan.FromMinutes(10));
        Range(failures, prefix, nameof(options.TotalTimeout), options.TotalTimeout, TimeSpan.FromMilliseconds(10), TimeSpan.FromHours(1));
        Range(failures, prefix, nameof(options.ConnectTimeout), options.ConnectTimeout, TimeSpan.FromMilliseconds(10), TimeSpan.FromMinutes(10));

        // Only a contradiction written at one level is an error; an unset side adapts (see Resolve).
        if (options.MaxEjectionTime is { } max && options.BaseEjectionTime is { } baseTime && max < baseTime)
        {
            failures.Add($"{prefix}:MaxEjectionTime ({max}) must not be shorter than {prefix}:BaseEjectionTime ({baseTime}).");
        }

        if (options.TotalTimeout is { } total && options.AttemptTimeout is { } attempt && total < attempt)
        {
            failures.Add($"{prefix}:TotalTimeout ({total}) must not be shorter than {prefix}:AttemptTimeout ({attempt}).");
        }

        if (options.ConnectTimeout is { } connect && options.AttemptTimeout is { } attemptTimeout && connect > attemptTimeout)
        {
            failures.Add($"{prefix}:ConnectTimeout ({connect}) must not be longer than {prefix}:AttemptTimeout ({attemptTimeout}).");
        }
    }

    private static void Range(List<string> failures, string prefix, string name, int? value, int min, int max)
    {
        if (value is { } v)
        {
            MeshOptionsValidator.ValidateRange(failures, $"{prefix}:{name}", v, min, max);
        }
    }

    private static void Range(List<string> failures, string prefix, string name, TimeSpan? value, TimeSpan min, TimeSpan max)
    {
        if (value is { } v)
        {
            MeshOptionsValidator.ValidateRange(failures, $"{prefix}:{name}", v, min, max);
        }
    }
}
