using MeshClient.Configuration;
using MeshClient.Model;
using Microsoft.Extensions.Logging;

namespace MeshClient.Balancing;

/// <summary>
/// Publishes the <see cref="EndpointSnapshot"/> of one service: it builds a new one from the current endpoints, their
/// health and the options whenever one of them changes (the health decision in <see cref="HealthyOrPanic"/>, the weights
/// of slow start in <see cref="SlowStartWeights"/>), one at a time, and coalesces the rebuilds that request outcomes ask
/// for onto one thread-pool work item. Never on the hot path, which reads <see cref="Current"/> only.
/// </summary>
internal sealed partial class SnapshotPublisher : IDisposable
{
    private readonly ServiceTableRegistry _registry;
    private readonly string _serviceName;
    private readonly Lock _lock = new();
    private readonly SlowStartWeights _slowStart;
    private readonly LoadReportWeights _loadReports;
    private volatile EndpointSnapshot? _current;
    private EndpointEntry[] _entries = [];
    private bool _known;
    private bool _disposed;
    private int _rebuildQueued; // a rebuild is queued or running
    private int _rebuildDirty; // a change was made since the running rebuild started
    private TaskCompletionSource? _rebuildWaiters;
    private int _built;
    private ZoneBalance? _zoneBalance; // kept across snapshots while the caller's zone stays the same

    public SnapshotPublisher(ServiceTableRegistry registry, string serviceName)
    {
        _registry = registry;
        _serviceName = serviceName;
        _slowStart = new SlowStartWeights(registry.TimeProvider, Rebuild);
        _loadReports = new LoadReportWeights(registry.TimeProvider, Rebuild);
    }

    /// <summary>Gets the published snapshot, or <see langword="null"/> while the service is not known.</summary>
    public EndpointSnapshot? Current => _current;

    /// <summary>Gets the lock that serialises rebuilds and health transitions (never taken on the hot path).</summary>
    public Lock Lock => _lock;

    /// <summary>Gets the options the last snapshot was built with.</summary>
    public MeshOptions? BuiltWith { get; private set; }

    /// <summary>Gets the number of snapshots built (diagnostics and tests).</summary>
    public int Built => Volatile.Read(ref _built);

    /// <summary>Gets a value indicating whether a rebuild is queued or running.</summary>
    public bool RebuildQueued => Volatile.Read(ref _rebuildQueued) != 0;

    /// <summary>Replaces the endpoints (the service is known from now on); the caller rebuilds when they changed.</summary>
    /// <param name="entries">The endpoints discovery returned.</param>
    public void SetEntries(EndpointEntry[] entries)
    {
        lock (_lock)
        {
            _entries = entries;
            _known = true;
        }
    }

    /// <summary>Withdraws the snapshot: nobody knows the service.</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _known = false;
            _current = null;
            _entries = [];
        }
    }

    /// <summary>
    /// Changes whether an endpoint takes traffic and publishes a new snapshot. An endpoint readmitted after an
    /// ejection enters slow start (when configured): it was down, and may be a process that just restarted.
    /// </summary>
    /// <param name="state">The endpoint.</param>
    /// <param name="status">Its new status.</param>
    /// <param name="rebuildLater">
    /// <see langword="true"/> when a request's outcome decided (an ejection, a readmission): the snapshot is then rebuilt
    /// on the thread pool by one coalescing work item, so the request that tripped the rule neither pays for the
    /// rebuild nor holds the lock through it. Until it is published, <see cref="EndpointState.TryAdmit"/> refuses an
    /// ejected endpoint picked from the old snapshot. A timer's transition rebuilds at once, on the timer's thread.
    /// </param>
    public void SetStatus(EndpointState state, EndpointStatus status, bool rebuildLater)
    {
        lock (_lock)
        {
            if (status == EndpointStatus.Healthy && state.Status != EndpointStatus.Healthy)
            {
                state.SlowStartSince = _registry.TimeProvider.GetTimestamp();
                state.LoadReport?.RestartBlackout(state.LoadReport.NonEmptySince); // A58: its reported weight waits a blackout again
            }

            state.SetStatus(status);
            if (!rebuildLater)
            {
                Rebuild();
            }
        }

        if (rebuildLater)
        {
            Volatile.Write(ref _rebuildDirty, 1);
        }

        if (rebuildLater && Interlocked.Exchange(ref _rebuildQueued, 1) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static publisher => publisher.RunQueuedRebuild(), this, preferLocal: false);
        }
    }

    /// <summary>
    /// Completes when the queued rebuild (if any) has published its snapshot: a pick that found no endpoint able to
    /// take an attempt in a snapshot that a health change made stale waits for the new one (the rare path only).
    /// </summary>
    public Task WhenRebuiltAsync(CancellationToken cancellationToken)
    {
        var waiters = Volatile.Read(ref _rebuildWaiters);
        if (waiters is null)
        {
            var created = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            waiters = Interlocked.CompareExchange(ref _rebuildWaiters, created, null) ?? created;
        }

        // Read after publishing the waiters: the worker clears the flag before it takes them.
        return RebuildQueued ? waiters.Task.WaitAsync(cancellationToken) : Task.CompletedTask;
    }

    private void RunQueuedRebuild()
    {
        while (true)
        {
            Volatile.Write(ref _rebuildDirty, 0);
            if (!Volatile.Read(ref _disposed))
            {
                Rebuild();
            }

            // A change made while this rebuild ran is built by this worker, unless one more was queued meanwhile.
            Volatile.Write(ref _rebuildQueued, 0);
            if (Volatile.Read(ref _rebuildDirty) == 0 || Interlocked.Exchange(ref _rebuildQueued, 1) != 0)
            {
                break;
            }
        }

        Interlocked.Exchange(ref _rebuildWaiters, null)?.TrySetResult();
    }

    /// <summary>Publishes a new snapshot from the current endpoints, health and options.</summary>
    public void Rebuild()
    {
        lock (_lock)
        {
            if (!_known)
            {
                return;
            }

            var options = _registry.Options.Current;
            BuiltWith = options;
            Interlocked.Increment(ref _built);
            options.Services.TryGetValue(_serviceName, out var service);
            var policyName = LoadBalancerNames.Normalize(service?.LoadBalancer)
                ?? LoadBalancerNames.Normalize(options.LoadBalancer)
                ?? LoadBalancerNames.PeakEwma;
            var previous = _current;
            var policy = previous?.Policy.Name == policyName && previous.Policy is not (PeakEwmaPolicy or WeightedRoundRobinPolicy)
                ? previous.Policy
                : LoadBalancingPolicy.Create(policyName, options, _registry.TimeProvider, service);
            var frequency = _registry.TimeProvider.TimestampFrequency;
            var all = _entries;
            var panicThreshold = service?.Resilience.PanicThresholdPercent ?? options.Resilience.PanicThresholdPercent ?? 50;
            var active = HealthyOrPanic.Select(all, panicThreshold, out var panic, out var unreachableAdmitted, out var healthy);
            var start = (int)_registry.Random.NextInt64(int.MaxValue);
            var ramp = SlowStartRamp.Resolve(options.SlowStart, service?.SlowStart);
            var weights = _loadReports.Compute(active, policy, _slowStart.Compute(active, ramp));
            _current = new EndpointSnapshot(_serviceName, all, active, policy, panic, start, weights, Zones(options, service, ramp))
            {
                UnreachableAdmitted = unreachableAdmitted,
                Decay = options.PeakEwma.DecayTime.TotalSeconds * frequency,
                FailurePenalty = options.PeakEwma.FailurePenalty.TotalSeconds * frequency,
            };
            if (panic != (previous?.Panic ?? false))
            {
                if (panic)
                {
                    Log.PanicEntered(_registry.Logger, _serviceName, healthy, all.Length);
                }
                else
                {
                    Log.PanicLeft(_registry.Logger, _serviceName, healthy, all.Length);
                }
            }
        }
    }

    /// <summary>The zone routing of the next snapshot, or <see langword="null"/> when it is off for the service.</summary>
    private ZoneContext? Zones(MeshOptions options, MeshServiceOptions? service, SlowStartRamp ramp)
    {
        if (ZoneRoutingSettings.Resolve(options, service) is not { } settings)
        {
            _zoneBalance = null;
            return null;
        }

        if (_zoneBalance?.Zone != settings.Zone)
        {
            _zoneBalance = new ZoneBalance(settings.Zone, _registry.TimeProvider.TimestampFrequency);
        }

        var time = _registry.TimeProvider;
        return new ZoneContext(settings, _zoneBalance, ramp, time.GetTimestamp(), time.TimestampFrequency);
    }

    public void Dispose()
    {
        lock (_lock)
        {
            Volatile.Write(ref _disposed, true);
            _slowStart.Dispose();
            _loadReports.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(104, LogLevel.Warning, "Service {Service}: panic mode entered, only {Healthy} of {Total} endpoint(s) healthy; balancing over all of them.", EventName = "PanicEntered")]
        public static partial void PanicEntered(ILogger logger, string service, int healthy, int total);

        [LoggerMessage(105, LogLevel.Information, "Service {Service}: panic mode left, {Healthy} of {Total} endpoint(s) healthy.", EventName = "PanicLeft")]
        public static partial void PanicLeft(ILogger logger, string service, int healthy, int total);
    }
}
