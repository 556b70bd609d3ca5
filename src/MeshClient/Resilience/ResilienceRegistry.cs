using MeshClient.Configuration;
using MeshClient.Model;
using System.Collections.Concurrent;
using MeshClient.Balancing;
using MeshClient.Discovery;
using MeshClient.Telemetry;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Primitives;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace MeshClient.Resilience;

/// <summary>
/// Builds and caches the <see cref="ServiceResilience"/> of every service: Polly pipelines (total timeout and
/// retry around a call; attempt timeout around one attempt) and a retry budget. The pipelines are rebuilt when options
/// change; a service's budget, with the requests and retries it has counted, is kept across a reload that leaves its
/// budget settings as they were (a reload that changes anything else must not hand every service a fresh budget).
/// </summary>
internal sealed class ResilienceRegistry : IDisposable
{
    /// <summary>The request of the current call, for the retry predicate.</summary>
    internal static readonly ResiliencePropertyKey<HttpRequestMessage> RequestKey = new("MeshClient.Request");

    private const int MaxCachedServices = 4096;

    /// <summary>
    /// The most connection refusals of one call retried at once, outside <c>MaxRetries</c>: enough to walk a service
    /// whose endpoints are mostly down (the chaos soak: 4 of 5 refusing, and all 5 marked unreachable while the one
    /// that came back was still serving its ejection) without turning a dead service into a retry storm (each one
    /// also takes from the retry budget).
    /// </summary>
    internal const int MaxRequeues = 4;
    private readonly ConcurrentDictionary<string, ServiceResilience> _services = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, RetryBudget> _budgets = new(StringComparer.OrdinalIgnoreCase);
    private readonly MeshOptionsChangeNotifier _options;
    private readonly TimeProvider _time;
    private readonly MeshInstrumentation _telemetry;
    private readonly IDisposable _optionsSubscription;
    private bool _disposed;

    public ResilienceRegistry(MeshOptionsChangeNotifier options, TimeProvider time, MeshInstrumentation telemetry)
    {
        _options = options;
        _time = time;
        _telemetry = telemetry;
        _optionsSubscription = ChangeToken.OnChange(options.GetChangeToken, _services.Clear);
    }

    /// <summary>Gets the number of services whose pipelines are cached (diagnostics and tests).</summary>
    internal int Count => _services.Count;

    /// <summary>Gets the number of retry budgets kept (diagnostics and tests).</summary>
    internal int BudgetCount => _budgets.Count;

    public ServiceResilience Get(string serviceName)
    {
        if (_services.TryGetValue(serviceName, out var resilience))
        {
            return resilience;
        }

        if (_services.Count >= MaxCachedServices)
        {
            // Hosts outside the mesh are many and cheap to rebuild: a bounded cache, not a leak.
            _services.Clear();
            _budgets.Clear();
        }

        return _services.GetOrAdd(serviceName, Create);
    }

    /// <summary>Gets the retry budget of a service, if it has one yet (its first call makes it), for the status page.</summary>
    public RetryBudget? FindBudget(string serviceName) => _budgets.TryGetValue(serviceName, out var budget) ? budget : null;

    /// <summary>Drops the pipelines and budget of a service that is no longer called; a later call builds them again.</summary>
    public void Remove(string serviceName)
    {
        _services.TryRemove(serviceName, out _);
        _budgets.TryRemove(serviceName, out _);
    }

    private ServiceResilience Create(string serviceName)
    {
        var options = _options.Current;
        options.Services.TryGetValue(serviceName, out var service);
        var settings = ResilienceSettings.Resolve(options.Resilience, service?.Resilience);
        var budget = _budgets.AddOrUpdate(
            serviceName,
            static (_, state) => state.Registry.NewBudget(state.Settings),
            static (_, existing, state) => existing.Matches(state.Settings.RetryBudgetPercent, state.Settings.RetryBudgetMinPerSecond, state.Settings.RetryBudgetWindow)
                ? existing
                : state.Registry.NewBudget(state.Settings),
            (Registry: this, Settings: settings));

        var call = new ResiliencePipelineBuilder<HttpResponseMessage> { Name = "mesh-call", InstanceName = serviceName, TimeProvider = _time }
            .AddTimeout(new TimeoutStrategyOptions { Name = "total-timeout", Timeout = settings.TotalTimeout });
        if (settings.MaxRetries > 0)
        {
            var retry = new HttpRetryStrategyOptions
            {
                Name = "retry",
                MaxRetryAttempts = settings.MaxRetries + MaxRequeues,
                Delay = settings.RetryBaseDelay,
                MaxDelay = settings.RetryMaxDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldRetryAfterHeader = true,
                ShouldHandle = args => new ValueTask<bool>(ShouldRetry(args, settings, budget, serviceName)),
            };

            // A requeue goes at once; any other retry keeps the strategy's own delay (Retry-After, else the backoff),
            // never above RetryMaxDelay: a long Retry-After keeps its endpoint out of the picks (OutlierDetector), and
            // the next attempt goes elsewhere instead of sleeping the call into its total timeout.
            var retryAfter = retry.DelayGenerator;
            var maxDelay = settings.RetryMaxDelay;
            retry.DelayGenerator = args => IsRequeue(args.Context)
                ? new ValueTask<TimeSpan?>(TimeSpan.Zero)
                : retryAfter is null ? new ValueTask<TimeSpan?>((TimeSpan?)null) : Cap(retryAfter(args), maxDelay);
            call.AddRetry(retry);
        }

        var attempt = new ResiliencePipelineBuilder<HttpResponseMessage> { Name = "mesh-attempt", InstanceName = serviceName, TimeProvider = _time }
            .AddTimeout(new TimeoutStrategyOptions { Name = "attempt-timeout", Timeout = settings.AttemptTimeout })
            .Build();
        return new ServiceResilience(serviceName, settings, call.Build(), attempt, budget, _telemetry);
    }

    private static async ValueTask<TimeSpan?> Cap(ValueTask<TimeSpan?> delay, TimeSpan max)
    {
        // Completes synchronously (no allocation) when the strategy's own delay did.
        var value = await delay.ConfigureAwait(false);
        return value > max ? max : value;
    }

    private RetryBudget NewBudget(ResilienceSettings settings) =>
        new(_time, settings.RetryBudgetPercent, settings.RetryBudgetMinPerSecond, settings.RetryBudgetWindow);

    private static bool IsRequeue(ResilienceContext context) =>
        context.Properties.GetValue(RequestKey, null!) is { } request
        && request.Options.TryGetValue(MeshRequestContext.Key, out var call)
        && call.RequeuePending;

    private bool ShouldRetry(RetryPredicateArguments<HttpResponseMessage> args, ResilienceSettings settings, RetryBudget budget, string serviceName)
    {
        if (args.Context.CancellationToken.IsCancellationRequested || Volatile.Read(ref _disposed))
        {
            // Disposed: the host is gone; a call that was in flight ends with its last outcome, not a new attempt.
            return false;
        }

        var reason = Classify(args.Outcome, out var sent);
        if (reason is null)
        {
            return false;
        }

        var request = args.Context.Properties.GetValue(RequestKey, null!);
        MeshRequestContext? mesh = null;
        request?.Options.TryGetValue(MeshRequestContext.Key, out mesh);

        // A refused connection sent nothing and cost a millisecond: it is retried at once on another endpoint without
        // using up MaxRetries (a requeue, as Finagle does), up to MaxRequeues per call.
        var requeue = mesh is not null && args.Outcome.Exception is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }
            && mesh.Requeues < MaxRequeues;
        var retries = args.AttemptNumber - (mesh?.Requeues ?? 0);
        if (!requeue && retries >= settings.MaxRetries)
        {
            return false;
        }

        if (sent && !settings.RetryNonIdempotent && request is not null && !IsIdempotent(request.Method))
        {
            // The server may have acted on it: a POST is never sent twice unless the user opts in.
            return false;
        }

        if (sent && !ResendableContent.CanResend(request?.Content))
        {
            // The body may have been read and cannot be read again: the caller gets this answer, not a local error.
            return false;
        }

        if (!budget.TryWithdraw())
        {
            _telemetry.RetryBudgetExhausted.Add(1, new KeyValuePair<string, object?>(MeshTags.Service, serviceName));
            MeshInstrumentation.AddEvent("mesh.retry_budget.exhausted", MeshTags.Service, serviceName);
            return false;
        }

        // Taken now, so that concurrent failures see it; given back if the call ends before the retry is sent, and
        // counted only when it is sent (PollyPipelineHandler).
        if (mesh is not null)
        {
            mesh.PendingRetry = reason;
            mesh.RequeuePending = requeue;
            mesh.Requeues += requeue ? 1 : 0;
        }

        return true;
    }

    /// <summary>
    /// Says whether an outcome is worth another attempt, and whether the request may have reached the server
    /// (<paramref name="sent"/>): connection failures and "no endpoint" sent nothing, so any method may retry.
    /// </summary>
    internal static string? Classify(Outcome<HttpResponseMessage> outcome, out bool sent)
    {
        sent = true;
        switch (outcome.Exception)
        {
            case null:
                return outcome is { Result: { } response } ? (int)response.StatusCode switch
                {
                    >= 500 => "status_5xx",
                    429 => "status_429",
                    408 => "status_408",
                    _ => null,
                } : null;
            case NoHealthyEndpointException:
                sent = false;
                return "no_endpoint";
            case HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError }:
                sent = false;
                return "connect_failure";
            case TimeoutRejectedException:
                return "timeout";
            case HttpRequestException local when LocalFailure.Is(local):
                return null; // the request itself cannot be sent (its body was consumed): another attempt would fail too
            case HttpRequestException:
                return "error";
            default:
                return null;
        }
    }

    internal static bool IsIdempotent(HttpMethod method) =>
        method == HttpMethod.Get || method == HttpMethod.Head || method == HttpMethod.Options
        || method == HttpMethod.Put || method == HttpMethod.Delete || method == HttpMethod.Trace;

    public void Dispose()
    {
        Volatile.Write(ref _disposed, true);
        _optionsSubscription.Dispose();
    }
}
