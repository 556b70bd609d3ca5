using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Resilience;
using MeshClient.Telemetry;
using Microsoft.Extensions.Primitives;

namespace MeshClient.Hedging;

/// <summary>
/// Resolves the hedging of a call (<see cref="For"/>) and keeps each service's <see cref="HedgingPolicy"/>: rebuilt when
/// the options change, with the service's hedge budget (when its settings are unchanged) and latency estimate kept.
/// When no service hedges, a call costs one volatile read.
/// </summary>
/// <remarks>
/// Routes plug in at <see cref="For"/>: a route's own <c>Hedging</c> section (<c>Mesh:Services:{name}:Routes:[i]:Hedging</c>)
/// resolves through <see cref="HedgingSettings.Resolve"/> as its third layer (route, then service, then global, field by
/// field), cached per service and route, and is chosen by the route the call was given; the budget and the latency
/// estimate stay the backend service's.
/// </remarks>
internal sealed class HedgingRegistry : IDisposable
{
    private const int MaxCachedServices = 4096;

    private readonly ConcurrentDictionary<string, HedgingPolicy> _policies = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, (RetryBudget Budget, LatencyHistogram? Latency)> _states = new(StringComparer.OrdinalIgnoreCase);
    private readonly MeshOptionsChangeNotifier _options;
    private readonly TimeProvider _time;
    private readonly MeshInstrumentation _telemetry;
    private readonly IDisposable _subscription;
    private volatile bool _anyEnabled;

    public HedgingRegistry(MeshOptionsChangeNotifier options, TimeProvider time, MeshInstrumentation telemetry)
    {
        _options = options;
        _time = time;
        _telemetry = telemetry;
        _anyEnabled = AnyServiceHedges(options.Current);
        _subscription = ChangeToken.OnChange(options.GetChangeToken, OnOptionsChanged);
        telemetry.ObserveHedgeDelays(ObserveDelays);
    }

    /// <summary>Gets a value indicating whether any service hedges (globally or on its own).</summary>
    public bool AnyEnabled => _anyEnabled;

    /// <summary>
    /// The hedging of <paramref name="call"/>'s next try when it may be hedged: its service hedges, and the request is one
    /// that may be sent twice at once (<see cref="HedgeRequest.CanHedge"/>). Otherwise <see langword="null"/>.
    /// </summary>
    public HedgingPolicy? For(MeshRequestContext call, HttpRequestMessage request)
    {
        if (!_anyEnabled || !HedgeRequest.CanHedge(request))
        {
            return null;
        }

        var policy = Get(call.Backend); // a routed call hedges as its backend does
        return policy.Settings.Enabled ? policy : null;
    }

    /// <summary>Gets the hedging of a service (disabled or not), building it on first use.</summary>
    public HedgingPolicy Get(string serviceName)
    {
        if (_policies.TryGetValue(serviceName, out var policy))
        {
            return policy;
        }

        if (_policies.Count >= MaxCachedServices)
        {
            // Hosts outside the mesh are many and cheap to rebuild: a bounded cache, not a leak.
            _policies.Clear();
            _states.Clear();
        }

        return _policies.GetOrAdd(serviceName, Create);
    }

    private HedgingPolicy Create(string serviceName)
    {
        var options = _options.Current;
        options.Services.TryGetValue(serviceName, out var service);
        var settings = HedgingSettings.Resolve(options.Resilience.Hedging, service?.Resilience.Hedging);
        if (!settings.Enabled)
        {
            return new HedgingPolicy(serviceName, settings, NewBudget(settings), null, _time, _telemetry);
        }

        var state = _states.AddOrUpdate(
            serviceName,
            static (_, s) => (s.Registry.NewBudget(s.Settings), s.Registry.NewLatency(s.Settings)),
            static (_, existing, s) => (
                existing.Budget.Matches(s.Settings.BudgetPercent, s.Settings.BudgetMinPerSecond, HedgingSettings.BudgetWindow) ? existing.Budget : s.Registry.NewBudget(s.Settings),
                s.Settings.Percentile is null ? null : existing.Latency ?? s.Registry.NewLatency(s.Settings)),
            (Registry: this, Settings: settings));
        return new HedgingPolicy(serviceName, settings, state.Budget, state.Latency, _time, _telemetry);
    }

    /// <summary>The delay in force of each service that hedges, for the <c>mesh.client.hedge.delay</c> gauge (read when exported).</summary>
    private IEnumerable<Measurement<double>> ObserveDelays()
    {
        var now = _time.GetTimestamp();
        foreach (var policy in _policies.Values)
        {
            if (policy.Settings.Enabled)
            {
                yield return new Measurement<double>(policy.Delay(now).TotalSeconds, policy.ServiceTag);
            }
        }
    }

    private RetryBudget NewBudget(HedgingSettings settings) =>
        new(_time, settings.BudgetPercent, settings.BudgetMinPerSecond, HedgingSettings.BudgetWindow);

    private LatencyHistogram? NewLatency(HedgingSettings settings) =>
        settings.Percentile is null ? null : new LatencyHistogram(_time, HedgingSettings.LatencyWindow);

    private void OnOptionsChanged()
    {
        _anyEnabled = AnyServiceHedges(_options.Current);
        _policies.Clear();
    }

    private static bool AnyServiceHedges(MeshOptions options)
    {
        if (options.Resilience.Hedging.Enabled == true)
        {
            return true;
        }

        foreach (var service in options.Services.Values)
        {
            if (service?.Resilience.Hedging.Enabled == true)
            {
                return true;
            }
        }

        return false;
    }

    public void Dispose() => _subscription.Dispose();
}
