using System.Collections.Concurrent;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Model;
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
    private const int MaxCachedServices = 4096;

    private readonly ConcurrentDictionary<string, ServiceResilience> _services = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, RetryBudget> _budgets = new(StringComparer.OrdinalIgnoreCase);
    private readonly MeshOptionsChangeNotifier _options;
    private readonly TimeProvider _time;
    private readonly MeshInstrumentation _telemetry;
    private readonly IDisposable _optionsSubscription;
    private readonly RetryPredicate _predicate;
    private bool _disposed;

    public ResilienceRegistry(MeshOptionsChangeNotifier options, TimeProvider time, MeshInstrumentation telemetry)
    {
        _options = options;
        _time = time;
        _telemetry = telemetry;
        _predicate = new RetryPredicate(telemetry, time, () => Volatile.Read(ref _disposed));
        _optionsSubscription = ChangeToken.OnChange(options.GetChangeToken, _services.Clear);
    }

    /// <summary>Gets the clock of the pipelines (and of the calls' deadlines).</summary>
    public TimeProvider Time => _time;

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

        return ServiceResilienceFactory.Create(serviceName, settings, budget, _time, _predicate, _telemetry);
    }

    private RetryBudget NewBudget(ResilienceSettings settings) =>
        new(_time, settings.RetryBudgetPercent, settings.RetryBudgetMinPerSecond, settings.RetryBudgetWindow);

    public void Dispose()
    {
        Volatile.Write(ref _disposed, true);
        _optionsSubscription.Dispose();
    }
}
