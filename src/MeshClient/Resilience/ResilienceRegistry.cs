using System.Collections.Concurrent;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Telemetry;
using Microsoft.Extensions.Primitives;

namespace MeshClient.Resilience;

/// <summary>
/// Builds and caches the <see cref="ServiceResilience"/> of every service: its effective settings (total and attempt
/// timeouts, retries) and a retry budget; and holds what every call's retry loop shares (the predicate, the clock, the
/// jitter's source). A service's resilience is rebuilt when options change; its budget, with the requests and retries
/// it has counted, is kept across a reload that leaves its budget settings as they were (a reload that changes
/// anything else must not hand every service a fresh budget).
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
    private bool _disposed;

    public ResilienceRegistry(MeshOptionsChangeNotifier options, TimeProvider time, MeshInstrumentation telemetry, Randomizer random)
    {
        _options = options;
        _time = time;
        _telemetry = telemetry;
        Random = random;
        Predicate = new RetryPredicate(telemetry, time, () => Volatile.Read(ref _disposed));
        _optionsSubscription = ChangeToken.OnChange(options.GetChangeToken, _services.Clear);
    }

    /// <summary>Gets the clock of the timeouts and backoffs (and of the calls' deadlines).</summary>
    public TimeProvider Time => _time;

    /// <summary>Gets the source of the backoffs' jitter.</summary>
    public Randomizer Random { get; }

    /// <summary>Gets the retry predicate every call shares.</summary>
    public RetryPredicate Predicate { get; }

    /// <summary>Gets the number of services whose resilience is cached (diagnostics and tests).</summary>
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

    /// <summary>Drops the resilience and budget of a service that is no longer called; a later call builds them again.</summary>
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

        return new ServiceResilience(serviceName, settings, budget, _telemetry);
    }

    private RetryBudget NewBudget(ResilienceSettings settings) =>
        new(_time, settings.RetryBudgetPercent, settings.RetryBudgetMinPerSecond, settings.RetryBudgetWindow);

    public void Dispose()
    {
        Volatile.Write(ref _disposed, true);
        _optionsSubscription.Dispose();
    }
}
