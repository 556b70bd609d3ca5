using MeshClient.Model;

namespace MeshClient.Routing;

/// <summary>One backend of a compiled route: a service and its weight.</summary>
/// <param name="Service">The backend service (as a request's host would spell it).</param>
/// <param name="Weight">Its configured weight.</param>
/// <param name="Health">What the split knows of it (shared by every route that names it).</param>
internal sealed record RouteBackend(string Service, int Weight, BackendHealth Health);

/// <summary>
/// One compiled route of a service: its match, its backends with the prefix sums of their weights, its timeout.
/// Immutable; the choice of a backend takes no lock and allocates nothing.
/// </summary>
internal sealed class CompiledRoute
{
    private readonly long[] _cumulative;
    private readonly long _total;
    private readonly ulong _weighted; // the backends with a positive weight, one bit each (at most 16 backends)

    public CompiledRoute(string name, RouteMatch match, RouteBackend[] backends, TimeSpan? timeout)
    {
        Name = name;
        Match = match;
        Backends = backends;
        Timeout = timeout;
        _cumulative = new long[backends.Length];
        for (var i = 0; i < backends.Length; i++)
        {
            _total += backends[i].Weight;
            _cumulative[i] = _total;
            _weighted |= backends[i].Weight > 0 ? 1UL << i : 0;
        }
    }

    public string Name { get; }

    public RouteMatch Match { get; }

    public RouteBackend[] Backends { get; }

    /// <summary>Gets the total timeout of the calls the route takes, or <see langword="null"/> for the backend's own.</summary>
    public TimeSpan? Timeout { get; }

    /// <summary>
    /// Chooses the backend of one call: in proportion to the weights among the backends that have a healthy endpoint
    /// (the others' weight goes to them); a backend with only a probing endpoint gets one call per
    /// <see cref="BackendHealth.ProbeInterval"/>, so that its probe can readmit it; when no backend has a healthy
    /// endpoint, in proportion to the weights as usual (the call then fails as one to a service with no healthy
    /// endpoint would). A single backend is chosen without a look at its health. Returns <see langword="null"/> while a
    /// backend's discovery has not answered yet and <paramref name="pendingIsUp"/> is not set: the caller waits for
    /// it (<see cref="WhenDiscoveredAsync"/>) and chooses again.
    /// </summary>
    public RouteBackend? Choose(Randomizer random, TimeProvider time, bool pendingIsUp = false)
    {
        var backends = Backends;
        if (backends.Length == 1)
        {
            return backends[0];
        }

        ulong down = 0, probing = 0;
        var pending = false;
        for (var i = 0; i < backends.Length; i++)
        {
            if ((_weighted & (1UL << i)) == 0)
            {
                continue;
            }

            switch (backends[i].Health.Read())
            {
                case BackendAvailability.Available:
                    break;
                case BackendAvailability.Pending:
                    pending = true; // every backend is read, so that each one's discovery starts now
                    break;
                case BackendAvailability.Probing:
                    down |= 1UL << i;
                    probing |= 1UL << i;
                    break;
                default:
                    down |= 1UL << i;
                    break;
            }
        }

        if (pending && !pendingIsUp)
        {
            return null;
        }

        if (down == 0 || down == _weighted)
        {
            return backends[Draw(random.NextInt64(_total))];
        }

        for (var i = 0; probing != 0; i++, probing >>= 1)
        {
            if ((probing & 1) != 0 && backends[i].Health.TryTakeProbe(time))
            {
                return backends[i];
            }
        }

        // The weight of the backends that are down goes to the others, in proportion to theirs.
        long total = 0;
        for (var i = 0; i < backends.Length; i++)
        {
            total += (down & (1UL << i)) == 0 ? backends[i].Weight : 0;
        }

        var ticket = random.NextInt64(total);
        for (var i = 0; i < backends.Length; i++)
        {
            if ((down & (1UL << i)) != 0)
            {
                continue;
            }

            if (ticket < backends[i].Weight)
            {
                return backends[i];
            }

            ticket -= backends[i].Weight;
        }

        return backends[^1]; // not reached: the tickets cover the backends that are up
    }

    /// <summary>Completes when discovery has answered for every backend of the route the first time.</summary>
    /// <param name="cancellationToken">The call's token.</param>
    public Task WhenDiscoveredAsync(CancellationToken cancellationToken)
    {
        var waits = new List<Task>(Backends.Length);
        foreach (var backend in Backends)
        {
            waits.Add(backend.Health.WhenResolvedAsync(cancellationToken));
        }

        return Task.WhenAll(waits);
    }

    /// <summary>
    /// The share of the route's calls each backend takes now, in percent (the weights after the backends without a
    /// healthy endpoint gave theirs to the others), with each backend's availability; for the status page.
    /// </summary>
    public (RouteBackend Backend, BackendAvailability Availability, double Share)[] Shares()
    {
        var backends = Backends;
        var result = new (RouteBackend, BackendAvailability, double)[backends.Length];
        long up = 0;
        for (var i = 0; i < backends.Length; i++)
        {
            var availability = backends[i].Health.Peek();
            result[i] = (backends[i], availability, 0);
            up += availability is BackendAvailability.Available or BackendAvailability.Pending ? backends[i].Weight : 0;
        }

        var allDown = up == 0 || backends.Length == 1;
        var total = allDown ? _total : up;
        for (var i = 0; i < backends.Length; i++)
        {
            var counts = allDown || result[i].Item2 is BackendAvailability.Available or BackendAvailability.Pending;
            result[i].Item3 = counts ? Math.Round(100.0 * backends[i].Weight / total, 2) : 0;
        }

        return result;
    }

    /// <summary>The backend whose prefix sum first exceeds <paramref name="ticket"/> (a linear scan: at most 16).</summary>
    private int Draw(long ticket)
    {
        var cumulative = _cumulative;
        for (var i = 0; i < cumulative.Length; i++)
        {
            if (ticket < cumulative[i])
            {
                return i;
            }
        }

        return cumulative.Length - 1;
    }
}
