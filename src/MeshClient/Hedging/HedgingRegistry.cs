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
/// A routed call whose route has a <c>Hedging</c> section of its own (<c>Mesh:Services:{name}:Routes:{i}:Hedging</c>)
/// hedges with <see cref="HedgingSettings.Resolve"/>'s third layer (route, then the backend service, then global, field
/// by field) and a budget and latency estimate of its own per route and backend, cached per compiled route (a
/// <see cref="CallRoute"/> is made once per route and backend, and made again on a reload, when the cache is cleared);
/// any other routed call hedges as its backend does.
/// </remarks>
internal sealed class HedgingRegistry : IDisposable
{
    private const int MaxCachedServices = 4096;

    private readonly ConcurrentDictionary<string, HedgingPolicy> _policies = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<CallRoute, HedgingPolicy> _routePolicies = new(); // by reference
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

        var policy = call.CallRoute is { } route ? ForRoute(call.ServiceName, route) : Get(call.ServiceName);
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

    /// <summary>The hedging of a call that <paramref name="route"/> of <paramref name="serviceName"/> sent to its backend.</summary>
    private HedgingPolicy ForRoute(string serviceName, CallRoute route)
    {
        if (_routePolicies.TryGetValue(route, out var policy))
        {
            return policy;
        }

        if (_routePolicies.Count >= MaxCachedServices)
        {
            _routePolicies.Clear();
        }

        return _routePolicies.GetOrAdd(route, static (r, s) => s.Registry.CreateForRoute(s.ServiceName, r), (Registry: this, ServiceName: serviceName));
    }

    private HedgingPolicy Create(string serviceName)
    {
        var options = _options.Current;
        options.Services.TryGetValue(serviceName, out var service);
        return Build(serviceName, null, serviceName, HedgingSettings.Resolve(options.Resilience.Hedging, service?.Resilience.Hedging));
    }

    private HedgingPolicy CreateForRoute(string serviceName, CallRoute route)
    {
        var options = _options.Current;
        if (FindRoute(options, serviceName, route.Name) is not { } routeOptions || !HedgingSettings.IsSet(routeOptions.Hedging))
        {
            return Get(route.Backend); // the route sets nothing: its calls hedge as their backend's do
        }

        options.Services.TryGetValue(route.Backend, out var backend);
        var settings = HedgingSettings.Resolve(options.Resilience.Hedging, backend?.Resilience.Hedging, routeOptions.Hedging);
        return Build(route.Backend, route.Name, string.Concat(serviceName, "\n", route.Name, "\n", route.Backend), settings);
    }

    /// <summary>A policy with <paramref name="settings"/>, keeping the budget and latency estimate of <paramref name="stateKey"/> across reloads.</summary>
    private HedgingPolicy Build(string serviceName, string? routeName, string stateKey, HedgingSettings settings)
    {
        if (!settings.Enabled)
        {
            return new HedgingPolicy(serviceName, routeName, settings, NewBudget(settings), null, _time, _telemetry);
        }

        var state = _states.AddOrUpdate(
            stateKey,
            static (_, s) => (s.Registry.NewBudget(s.Settings), s.Registry.NewLatency(s.Settings)),
            static (_, existing, s) => (
                existing.Budget.Matches(s.Settings.BudgetPercent, s.Settings.BudgetMinPerSecond, HedgingSettings.BudgetWindow) ? existing.Budget : s.Registry.NewBudget(s.Settings),
                s.Settings.Percentile is null ? null : existing.Latency ?? s.Registry.NewLatency(s.Settings)),
            (Registry: this, Settings: settings));
        return new HedgingPolicy(serviceName, routeName, settings, state.Budget, state.Latency, _time, _telemetry);
    }

    private static MeshRouteOptions? FindRoute(MeshOptions options, string serviceName, string routeName)
    {
        if (!options.Services.TryGetValue(serviceName, out var service) || service is null)
        {
            return null;
        }

        for (var i = 0; i < service.Routes.Count; i++)
        {
            if (service.Routes[i] is { } route && string.Equals(RouteOptionsValidation.EffectiveName(route, i), routeName, StringComparison.OrdinalIgnoreCase))
            {
                return route;
            }
        }

        return null;
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

        foreach (var policy in _routePolicies.Values)
        {
            if (policy.Settings.Enabled && policy.RouteName is { } route)
            {
                yield return new Measurement<double>(policy.Delay(now).TotalSeconds, policy.ServiceTag, new KeyValuePair<string, object?>(MeshTags.Route, route));
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
        _routePolicies.Clear();
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

            foreach (var route in service?.Routes ?? [])
            {
                if (route?.Hedging.Enabled == true)
                {
                    return true;
                }
            }
        }

        return false;
    }

    public void Dispose() => _subscription.Dispose();
}
