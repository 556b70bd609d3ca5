using System.Collections.Concurrent;
using System.Collections.Frozen;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace MeshClient.Routing;

/// <summary>
/// The routes of every service (<c>Mesh:Services:{name}:Routes</c>), compiled into immutable <see cref="RouteTable"/>s
/// and replaced whole, in one reference, when the last valid options change (an invalid reload is refused by
/// <see cref="MeshOptionsChangeNotifier"/>, and the routes in force keep serving). Once per call, before the first
/// attempt, <see cref="RouteAsync"/> decides the route and its backend and writes them on the call's
/// <see cref="MeshRequestContext"/>: every attempt of the call then goes to that backend's endpoints, with that
/// backend's resilience (a call never switches backends).
/// </summary>
internal sealed class MeshRouter : IDisposable
{
    private readonly MeshOptionsChangeNotifier _options;
    private readonly ServiceTableRegistry _registry;
    private readonly Randomizer _random;
    private readonly TimeProvider _time;
    private readonly ILogger<MeshRouter> _logger;
    private readonly ConcurrentDictionary<string, BackendHealth> _health = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lock _buildLock = new();
    private readonly IDisposable _subscription;
    private volatile FrozenDictionary<string, RouteTable> _tables;

    public MeshRouter(MeshOptionsChangeNotifier options, ServiceTableRegistry registry, Randomizer random, TimeProvider time, ILogger<MeshRouter> logger)
    {
        _options = options;
        _registry = registry;
        _random = random;
        _time = time;
        _logger = logger;
        _tables = Build(options.Current);
        _subscription = ChangeToken.OnChange(options.GetChangeToken, Rebuild);
    }

    /// <summary>Gets the route tables in force, by service name (case-insensitive).</summary>
    public IReadOnlyDictionary<string, RouteTable> Tables => _tables;

    /// <summary>
    /// Routes one call of a service with routes: the first matching route chooses a backend
    /// (<see cref="CompiledRoute.Choose"/>) and bounds the call's deadline by its timeout. A service without routes costs
    /// one volatile read (and one dictionary read when some other service has routes); the choice completes at once
    /// except on the first calls of a backend, which wait for discovery's first answer. Throws
    /// <see cref="NoMatchingRouteException"/> when no route matches, before anything is sent.
    /// </summary>
    /// <param name="request">The request.</param>
    /// <param name="context">The call, whose <see cref="MeshRequestContext.ServiceName"/> is the routed service.</param>
    /// <param name="startTimestamp">When the call started (its route's timeout counts from then).</param>
    /// <param name="cancellationToken">The call's token (the wait for discovery).</param>
    public ValueTask RouteAsync(HttpRequestMessage request, MeshRequestContext context, long startTimestamp, CancellationToken cancellationToken)
    {
        var tables = _tables;
        if (tables.Count == 0 || !tables.TryGetValue(context.ServiceName, out var table))
        {
            return default;
        }

        var route = table.Find(request) ?? throw NoMatch(table, request);
        context.Route = route.Name;
        if (route.Timeout is { } timeout)
        {
            context.LimitDeadline(timeout, startTimestamp);
        }

        if (route.Choose(_random, _time) is { } backend)
        {
            context.Backend = backend.Service;
            return default;
        }

        return ChooseAfterDiscoveryAsync(route, context, cancellationToken);
    }

    /// <summary>A backend of the route was never looked up yet: its first answer says whether it may take the call.</summary>
    private async ValueTask ChooseAfterDiscoveryAsync(CompiledRoute route, MeshRequestContext context, CancellationToken cancellationToken)
    {
        await route.WhenDiscoveredAsync(cancellationToken).ConfigureAwait(false);
        context.Backend = (route.Choose(_random, _time) ?? route.Choose(_random, _time, pendingIsUp: true))!.Service;
    }

    private static NoMatchingRouteException NoMatch(RouteTable table, HttpRequestMessage request) =>
        new(table.ServiceName,
            $"No route of the service '{table.ServiceName}' matches {request.Method} {request.RequestUri?.AbsolutePath} " +
            $"(routes, in order: {string.Join(", ", table.Routes.Select(r => r.Name))}). " +
            $"Add a last route without Match under 'Mesh:Services:{table.ServiceName}:Routes' to take every other request.");

    private void Rebuild()
    {
        lock (_buildLock)
        {
            var tables = Build(_options.Current);
            _tables = tables;

            // A backend that no route names any more is forgotten (a later route naming it starts afresh).
            var named = tables.Values.SelectMany(t => t.Routes).SelectMany(r => r.Backends).Select(b => b.Service).ToHashSet(StringComparer.OrdinalIgnoreCase);
            foreach (var service in _health.Keys)
            {
                if (!named.Contains(service))
                {
                    _health.TryRemove(service, out _);
                }
            }
        }
    }

    /// <summary>Compiles the routes of validated options (<see cref="RouteOptionsValidation"/>).</summary>
    private FrozenDictionary<string, RouteTable> Build(MeshOptions options)
    {
        var tables = new Dictionary<string, RouteTable>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, service) in options.Services)
        {
            if (service is not { Routes.Count: > 0 } || RouteOptionsValidation.NormalizeServiceName(name) is not { } serviceName)
            {
                continue;
            }

            var routes = new CompiledRoute[service.Routes.Count];
            for (var i = 0; i < routes.Length; i++)
            {
                var route = service.Routes[i];
                var backends = route.Backends
                    .Select(b => RouteOptionsValidation.NormalizeServiceName(b.Service)!)
                    .Select((backend, j) => new RouteBackend(backend, route.Backends[j].Weight, _health.GetOrAdd(backend, static (s, router) => new BackendHealth(s, router._registry, router._logger), this)))
                    .ToArray();
                routes[i] = new CompiledRoute(RouteOptionsValidation.EffectiveName(route, i), RouteMatch.Create(route.Match), backends, route.Timeout);
            }

            tables[serviceName] = new RouteTable(serviceName, routes);
        }

        return tables.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
    }

    public void Dispose() => _subscription.Dispose();
}
