using MeshClient.Balancing;
using MeshClient.Model;
using Microsoft.Extensions.Logging;

namespace MeshClient.Routing;

/// <summary>Whether a route's backend takes its share of the split.</summary>
internal enum BackendAvailability
{
    /// <summary>It has a healthy endpoint: it takes its share.</summary>
    Available,

    /// <summary>
    /// Discovery has not answered for it yet (its first calls): the route waits for that answer before it chooses
    /// (<see cref="BackendHealth.WhenResolvedAsync"/>), so that a backend nobody knows never takes a call.
    /// </summary>
    Pending,

    /// <summary>
    /// No endpoint is healthy and one is probing (its ejection ended): it takes no share but one call now and then
    /// (<see cref="BackendHealth.ProbeInterval"/>), so that its probe can readmit it.
    /// </summary>
    Probing,

    /// <summary>No endpoint can take traffic (all ejected, none at all, or no provider knows the service): no share.</summary>
    Down,
}

/// <summary>
/// What the split knows of one backend service: whether it has a healthy endpoint, read from its
/// <see cref="ServiceTable"/>'s published snapshot. One per backend name, shared by every route that names it and kept
/// across reloads (its transitions are logged once: event 120 when it drops out of the split, 121 when it returns).
/// </summary>
/// <remarks>
/// The per-call read is a few volatile reads: the table is kept, and the verdict is worked out once per published
/// snapshot (a health change publishes a new one) and kept with it — allocation and the scan over the endpoints happen
/// only when the snapshot changed.
/// </remarks>
internal sealed partial class BackendHealth
{
    /// <summary>
    /// How often a backend with no healthy endpoint but a probing one is sent a call of its own (not a share): the call
    /// that lets the probing endpoint's probe readmit it. A shorter wait would send more calls to a backend that may
    /// still be down; a probe that fails ejects the endpoint again, and the backend waits for the next.
    /// </summary>
    internal static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(1);

    private readonly ServiceTableRegistry _registry;
    private readonly ILogger _logger;
    private ServiceTable? _table;
    private volatile View _view = View.Initial;
    private int _outOfSplit;
    private long _lastProbe;

    public BackendHealth(string service, ServiceTableRegistry registry, ILogger logger)
    {
        Service = service;
        _registry = registry;
        _logger = logger;
    }

    /// <summary>Gets the backend's service name (as a request's host would spell it).</summary>
    public string Service { get; }

    /// <summary>
    /// Reads the backend's availability for a call: keeps its discovery warm (it is part of a split in use) and logs
    /// when it drops out of or returns to the split. Lock-free; allocates only when the backend's snapshot changed.
    /// </summary>
    public BackendAvailability Read() => Read(markUsed: true);

    /// <summary>Reads the availability for the status page (does not mark the backend as used).</summary>
    public BackendAvailability Peek() => Read(markUsed: false);

    private BackendAvailability Read(bool markUsed)
    {
        var table = _table;
        if (table is null || table.IsDisposed)
        {
            table = Attach();
        }

        var view = _view;
        if (table is null)
        {
            // A dotted name that no provider knows (the registry's negative cache): no table is kept for it.
            return view.Table is null && view.Resolution == ServiceResolution.Unknown ? view.Availability : Refresh(null, null);
        }

        if (markUsed)
        {
            table.MarkUsed();
        }

        var snapshot = table.Snapshot;
        return ReferenceEquals(view.Table, table) && ReferenceEquals(view.Snapshot, snapshot) && (snapshot is not null || view.Resolution == table.Resolution)
            ? view.Availability
            : Refresh(table, snapshot);
    }

    /// <summary>
    /// Takes the backend's turn for a probing call, at most once per <see cref="ProbeInterval"/> (the first call that
    /// asks gets it): <see langword="true"/> when this call is to go to the backend.
    /// </summary>
    public bool TryTakeProbe(TimeProvider time)
    {
        var now = time.GetTimestamp();
        var last = Volatile.Read(ref _lastProbe);
        if (last != 0 && time.GetElapsedTime(last, now) < ProbeInterval)
        {
            return false;
        }

        return Interlocked.CompareExchange(ref _lastProbe, now, last) == last;
    }

    /// <summary>Completes when discovery has answered for the backend the first time (at once when it has).</summary>
    /// <param name="cancellationToken">Cancels the wait (the call's token).</param>
    public Task WhenResolvedAsync(CancellationToken cancellationToken) =>
        Volatile.Read(ref _table) is { IsDisposed: false } table ? table.WaitForFirstResolutionAsync(cancellationToken) : Task.CompletedTask;

    private ServiceTable? Attach()
    {
        if (_registry.IsExternal(Service))
        {
            return null;
        }

        var table = _registry.GetTable(Service);
        _table = table;
        return table;
    }

    private BackendAvailability Refresh(ServiceTable? table, EndpointSnapshot? snapshot)
    {
        var resolution = table?.Resolution ?? ServiceResolution.Unknown;
        var (availability, reason) = snapshot is not null ? Assess(snapshot)
            : resolution == ServiceResolution.Pending ? (BackendAvailability.Pending, null)
            : resolution == ServiceResolution.Failed ? (BackendAvailability.Down, "its discovery failed")
            : (BackendAvailability.Down, "no discovery provider knows it");
        _view = new View(table, snapshot, resolution, availability);

        var outOfSplit = availability == BackendAvailability.Available ? 0 : 1;
        if (availability != BackendAvailability.Pending && Interlocked.Exchange(ref _outOfSplit, outOfSplit) != outOfSplit)
        {
            if (outOfSplit == 1)
            {
                Log.DroppedOut(_logger, Service, reason!);
            }
            else
            {
                Log.Returned(_logger, Service);
            }
        }

        return availability;
    }

    /// <summary>Whether any endpoint of the snapshot is healthy (status, not panic: panic still sends to ejected ones).</summary>
    private static (BackendAvailability Availability, string? Reason) Assess(EndpointSnapshot snapshot)
    {
        var probing = false;
        foreach (var entry in snapshot.All)
        {
            switch (entry.State.Status)
            {
                case EndpointStatus.Healthy:
                    return (BackendAvailability.Available, null);
                case EndpointStatus.Probing:
                    probing = true;
                    break;
            }
        }

        return snapshot.All.Length == 0 ? (BackendAvailability.Down, "it has no endpoint")
            : probing ? (BackendAvailability.Probing, "no endpoint is healthy; one is probing")
            : (BackendAvailability.Down, "every endpoint is ejected");
    }

    /// <summary>The verdict on one published snapshot of the backend (replaced whole).</summary>
    private sealed record View(ServiceTable? Table, EndpointSnapshot? Snapshot, ServiceResolution Resolution, BackendAvailability Availability)
    {
        /// <summary>Before the first read: not known yet.</summary>
        public static readonly View Initial = new(null, null, ServiceResolution.Pending, BackendAvailability.Pending);
    }

    private static partial class Log
    {
        [LoggerMessage(120, LogLevel.Warning, "Route backend {Backend} has no healthy endpoint ({Reason}): it takes no share of the traffic split to it; its weight goes to the other backends of its routes.", EventName = "RouteBackendDroppedOut")]
        public static partial void DroppedOut(ILogger logger, string backend, string reason);

        [LoggerMessage(121, LogLevel.Information, "Route backend {Backend} has a healthy endpoint again: it takes its share of the split again.", EventName = "RouteBackendReturned")]
        public static partial void Returned(ILogger logger, string backend);
    }
}
