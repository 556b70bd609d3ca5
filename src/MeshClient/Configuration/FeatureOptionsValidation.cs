using System.Globalization;

namespace MeshClient.Configuration;

/// <summary>
/// The rules of <see cref="MeshResilienceOptions"/> (with its <see cref="MeshHedgingOptions"/>), <see cref="SlowStartOptions"/>,
/// <see cref="WeightedRoundRobinOptions"/> and <see cref="ZoneRoutingOptions"/>, global or per service, each
/// failure naming its key (called by <see cref="MeshOptionsValidator"/>).
/// </summary>
internal static class FeatureOptionsValidation
{
    /// <summary>Checks one set of options (global or per service), naming the keys under <paramref name="prefix"/>.</summary>
    public static void ValidateResilience(List<string> failures, string prefix, MeshResilienceOptions? options)
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

        ValidateHedging(failures, $"{prefix}:Hedging", options.Hedging);
    }

    /// <summary>Checks one set of hedging options (global or per service), naming the keys under <paramref name="prefix"/>.</summary>
    public static void ValidateHedging(List<string> failures, string prefix, MeshHedgingOptions options)
    {
        Range(failures, prefix, nameof(options.Delay), options.Delay, TimeSpan.Zero, TimeSpan.FromMinutes(10));
        Range(failures, prefix, nameof(options.MinDelay), options.MinDelay, TimeSpan.Zero, TimeSpan.FromMinutes(10));
        Range(failures, prefix, nameof(options.MaxDelay), options.MaxDelay, TimeSpan.Zero, TimeSpan.FromMinutes(10));
        Range(failures, prefix, nameof(options.MaxAttempts), options.MaxAttempts, 2, 10);
        Range(failures, prefix, nameof(options.BudgetPercent), options.BudgetPercent, 0, 100);
        Range(failures, prefix, nameof(options.BudgetMinPerSecond), options.BudgetMinPerSecond, 0, 100_000);
        if (options.Percentile is { } percentile && !(percentile is >= 50 and <= 99.99))
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{prefix}:Percentile must be between 50 and 99.99, was {percentile}."));
        }

        if (options.MinDelay is { } min && options.MaxDelay is { } max && min > max)
        {
            failures.Add($"{prefix}:MinDelay ({min}) must not be longer than {prefix}:MaxDelay ({max}).");
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

    /// <summary>Checks one set of slow-start options, naming the keys under <paramref name="key"/>.</summary>
    public static void ValidateSlowStart(List<string> failures, string key, SlowStartOptions options)
    {
        if (options.Window is { } window && window != TimeSpan.Zero && (window < TimeSpan.FromSeconds(1) || window > TimeSpan.FromHours(1)))
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{key}:Window must be 0 (off) or between 00:00:01 and 01:00:00, was {window}."));
        }

        if (options.Aggression is { } aggression && !(aggression is >= 0.1 and <= 10))
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{key}:Aggression must be between 0.1 and 10, was {aggression}."));
        }

        if (options.MinWeightPercent is { } percent)
        {
            MeshOptionsValidator.ValidateRange(failures, $"{key}:MinWeightPercent", percent, 1, 100);
        }
    }

    /// <summary>Checks one set of zone-routing options, naming the keys under <paramref name="key"/>.</summary>
    public static void ValidateZoneRouting(List<string> failures, string key, ZoneRoutingOptions options)
    {
        if (options.SpillStartRatio is { } start && !(start is >= 1 and <= 100))
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{key}:SpillStartRatio must be between 1 and 100, was {start}."));
        }

        if (options.SpillFullRatio is { } full && !(full is >= 1 and <= 1000))
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{key}:SpillFullRatio must be between 1 and 1000, was {full}."));
        }

        // Only a contradiction written at one level is an error; an unset side adapts (ZoneRoutingSettings.Resolve).
        if (options.SpillStartRatio is { } s && options.SpillFullRatio is { } f && f <= s)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{key}:SpillFullRatio ({f}) must be above {key}:SpillStartRatio ({s})."));
        }
    }

    /// <summary>Checks one set of weighted-round-robin options, naming the keys under <paramref name="key"/>.</summary>
    public static void ValidateWeightedRoundRobin(List<string> failures, string key, WeightedRoundRobinOptions options)
    {
        Range(failures, key, nameof(options.BlackoutPeriod), options.BlackoutPeriod, TimeSpan.Zero, TimeSpan.FromHours(1));
        Range(failures, key, nameof(options.WeightExpirationPeriod), options.WeightExpirationPeriod, TimeSpan.FromSeconds(1), TimeSpan.FromDays(1));
        Range(failures, key, nameof(options.WeightUpdatePeriod), options.WeightUpdatePeriod, TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(10));
        if (options.ErrorUtilizationPenalty is { } penalty && !(penalty is >= 0 and <= 100))
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{key}:ErrorUtilizationPenalty must be between 0 and 100, was {penalty}."));
        }
    }
}
