using MeshClient.Model;
using MeshClient.Telemetry;
using Microsoft.Extensions.Http.Resilience;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace MeshClient.Resilience;

/// <summary>
/// Builds the Polly pipelines of one service from its settings: around a call, the total timeout and the retry (the
/// mesh's predicate, Retry-After capped at <c>RetryMaxDelay</c>, a requeue — and a retry that a Retry-After sends to another
/// endpoint — sent at once); around one attempt, the
/// attempt timeout.
/// </summary>
internal static class ServiceResilienceFactory
{
    public static ServiceResilience Create(string serviceName, ResilienceSettings settings, RetryBudget budget, TimeProvider time, RetryPredicate predicate, MeshInstrumentation telemetry)
    {
        var call = new ResiliencePipelineBuilder<HttpResponseMessage> { Name = "mesh-call", InstanceName = serviceName, TimeProvider = time }
            .AddTimeout(new TimeoutStrategyOptions
            {
                Name = "total-timeout",
                Timeout = settings.TotalTimeout,
                TimeoutGenerator = args => new ValueTask<TimeSpan>(WithinDeadline(settings.TotalTimeout, args.Context, time)),
            });
        if (settings.MaxRetries > 0)
        {
            var retry = new HttpRetryStrategyOptions
            {
                Name = "retry",
                MaxRetryAttempts = settings.MaxRetries + RetryPredicate.MaxRequeues,
                Delay = settings.RetryBaseDelay,
                MaxDelay = settings.RetryMaxDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldRetryAfterHeader = true,
                ShouldHandle = args => new ValueTask<bool>(predicate.ShouldRetry(args, settings, budget, serviceName)),
            };

            // A requeue goes at once, and so does a retry after Retry-After (or a pushback) when another endpoint can
            // take it: the asking endpoint is out of the picks (OutlierDetector), so its delay has nothing to wait for.
            // Any other retry keeps the strategy's own delay (Retry-After, else the backoff), never above RetryMaxDelay,
            // instead of sleeping the call into its total timeout.
            var retryAfter = retry.DelayGenerator;
            var maxDelay = settings.RetryMaxDelay;
            retry.DelayGenerator = args => RetryPredicate.GoesAtOnce(args.Context)
                ? new ValueTask<TimeSpan?>(TimeSpan.Zero)
                : retryAfter is null ? new ValueTask<TimeSpan?>((TimeSpan?)null) : Cap(retryAfter(args), maxDelay);
            call.AddRetry(retry);
        }

        var attempt = new ResiliencePipelineBuilder<HttpResponseMessage> { Name = "mesh-attempt", InstanceName = serviceName, TimeProvider = time }
            .AddTimeout(new TimeoutStrategyOptions
            {
                Name = "attempt-timeout",
                Timeout = settings.AttemptTimeout,
                TimeoutGenerator = args => new ValueTask<TimeSpan>(WithinDeadline(settings.AttemptTimeout, args.Context, time)),
            })
            .Build();
        return new ServiceResilience(serviceName, settings, call.Build(), attempt, budget, telemetry);
    }

    private static readonly TimeSpan MinimumTimeout = TimeSpan.FromMilliseconds(1);

    /// <summary>
    /// A timeout of the service, bounded by the time the call has left before its own deadline (gRPC's
    /// <c>grpc-timeout</c>, <see cref="MeshRequestContext.Remaining"/>, which adds a small grace so that Grpc.Net.Client
    /// ends the call first with <c>DEADLINE_EXCEEDED</c>): the shorter wins. Never below a millisecond (Polly applies no
    /// timeout at all at zero).
    /// </summary>
    private static TimeSpan WithinDeadline(TimeSpan timeout, ResilienceContext context, TimeProvider time)
    {
        if (context.Properties.TryGetValue(RetryState.RequestKey, out var request)
            && request.Options.TryGetValue(MeshRequestContext.Key, out var call)
            && call.Remaining(time) is { } remaining
            && remaining < timeout)
        {
            return remaining > MinimumTimeout ? remaining : MinimumTimeout;
        }

        return timeout;
    }

    private static async ValueTask<TimeSpan?> Cap(ValueTask<TimeSpan?> delay, TimeSpan max)
    {
        // Completes synchronously (no allocation) when the strategy's own delay did.
        var value = await delay.ConfigureAwait(false);
        return value > max ? max : value;
    }
}
