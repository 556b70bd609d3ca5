using System.Collections.Concurrent;
using System.Net;
using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Model;
using MeshClient.Security;
using MeshClient.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Balancing;

/// <summary>
/// The endpoint table of one service: it follows discovery through <see cref="ServiceEndpointResolver"/> and its
/// change tokens, keeps the live <see cref="EndpointState"/> of every endpoint by stable id, and publishes an
/// immutable <see cref="EndpointSnapshot"/> for the hot path. Everything here runs off the hot path except
/// <see cref="Snapshot"/>, <see cref="MarkUsed"/> and <see cref="RecordOutcome"/>.
/// </summary>
internal sealed partial class ServiceTable : IDisposable
{
    private readonly ServiceTableRegistry _registry;
    private readonly string _query;
    private readonly ConcurrentDictionary<string, EndpointState> _states = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _refreshLock = new(1, 1);
    private readonly CancellationTokenSource _disposed = new();
    private readonly ITimer _timer;
    private readonly Task _firstResolution;
    private volatile ServiceResolution _resolution;
    private volatile DiscoveryInfo? _discovery;
    private long _refreshedTicks; // UTC ticks of the last answer that changed nothing (no DiscoveryInfo built for it)
    private readonly SnapshotPublisher _publisher;
    private readonly RefusedEndpointLog _refusedLog;
    private EndpointEntry[] _entries = [];
    private ServiceEndpointSource? _source;
    private IDisposable? _tokenRegistration;
    private Exception? _lastError;
    private int _usedSinceTick = 1;
    private long _lastUsed;
    private long _newEndpointsSlowStartSince; // set by Apply: 0 on a first resolution, when nothing is in use yet
    private MeshOptions? _appliedWith; // the options of the last full Apply (its address filter)

    public ServiceTable(ServiceTableRegistry registry, string serviceName)
    {
        _registry = registry;
        ServiceName = serviceName;
        IsSingleLabel = !serviceName.Contains('.', StringComparison.Ordinal);
        _publisher = new SnapshotPublisher(registry, serviceName);
        _refusedLog = new RefusedEndpointLog(serviceName, registry.Logger);

        // Unnamed query: the standard configuration provider reads "default", then "http", then "https" sections;
        // the scheme actually sent is decided per request (EndpointEntry.Rewrite).
        _query = "http+https://" + serviceName;
        _lastUsed = registry.TimeProvider.GetTimestamp();
        _timer = registry.TimeProvider.CreateTimer(static s => ((ServiceTable)s!).OnTimer(), this, ServiceTableRegistry.RefreshInterval, ServiceTableRegistry.RefreshInterval);
        _firstResolution = RefreshAsync();
    }

    public string ServiceName { get; }

    public bool IsSingleLabel { get; }

    public EndpointSnapshot? Snapshot => _publisher.Current;

    public ServiceResolution Resolution => _resolution;

    /// <summary>Gets a value indicating whether the registry let go of the table (evicted, or the host is shutting down).</summary>
    public bool IsDisposed => _disposed.IsCancellationRequested;

    public Exception? LastError => _lastError;

    /// <summary>
    /// Gets what the last answer of discovery said about the service (for the status page), or <see langword="null"/>
    /// before the first one. Replaced whole, so a reader never sees half of an update; an answer that changed nothing
    /// only moves <see cref="DiscoveryInfo.Refreshed"/> (a record is made for the reader, not on every refresh).
    /// </summary>
    public DiscoveryInfo? Discovery
    {
        get
        {
            var discovery = _discovery;
            var refreshed = Volatile.Read(ref _refreshedTicks);
            return discovery is null || refreshed <= discovery.Refreshed.UtcTicks
                ? discovery
                : discovery with { Refreshed = new DateTimeOffset(refreshed, TimeSpan.Zero) };
        }
    }

    /// <summary>
    /// Gets or sets a value indicating whether the registry let go of this table (a dotted name nobody knows) before
    /// it was ever added; only the request that created it still uses it, to pass through.
    /// </summary>
    internal bool IsDiscarded { get; set; }

    /// <summary>Gets the live state of every current endpoint, for diagnostics and tests.</summary>
    public IReadOnlyCollection<EndpointState> States => (IReadOnlyCollection<EndpointState>)_states.Values;

    /// <summary>Gets the endpoints of the last discovery answer that changed anything (diagnostics and tests).</summary>
    internal EndpointEntry[] Entries => _entries;

    /// <summary>Gets the number of change-token registrations the table holds (0 or 1; diagnostics and tests).</summary>
    internal int ChangeRegistrations => Volatile.Read(ref _tokenRegistration) is null ? 0 : 1;

    public Task WaitForFirstResolutionAsync(CancellationToken cancellationToken) => _firstResolution.WaitAsync(cancellationToken);

    /// <summary>Notes that the service is in use (keeps its discovery warm). Writes only on the first use per tick.</summary>
    public void MarkUsed()
    {
        if (Volatile.Read(ref _usedSinceTick) == 0)
        {
            Volatile.Write(ref _usedSinceTick, 1);
        }
    }

    /// <summary>Gets the lock that serialises snapshot rebuilds and health transitions (never taken on the hot path).</summary>
    public Lock HealthLock => _publisher.Lock;

    /// <summary>
    /// The longest <c>Retry-After</c> (or gRPC pushback) taken as an endpoint's latency sample (Linkerd's
    /// <c>load-biaser-max-retry-after</c>: 300 s).
    /// </summary>
    internal static readonly TimeSpan MaxRetryAfterSample = TimeSpan.FromSeconds(300);

    /// <summary>Records how an attempt ended: latency for the balancer, the outcome for outlier detection.</summary>
    /// <param name="snapshot">The snapshot the attempt was picked from.</param>
    /// <param name="endpoint">The endpoint.</param>
    /// <param name="startTimestamp">When the attempt started.</param>
    /// <param name="outcome">How it ended.</param>
    /// <param name="wasProbe">Whether it was the endpoint's probe.</param>
    /// <param name="retryAfter">
    /// How long the endpoint asked not to be called (<c>Retry-After</c>, <c>grpc-retry-pushback-ms</c>), or zero: the
    /// failure's latency sample is at least that long (capped at <see cref="MaxRetryAfterSample"/>), as Linkerd's load
    /// biaser records it, so that peak-EWMA keeps away from the endpoint even where it is not ejected (panic mode,
    /// <c>MaxEjectionPercent: 0</c>).
    /// </param>
    public void RecordOutcome(EndpointSnapshot snapshot, EndpointEntry endpoint, long startTimestamp, AttemptOutcome outcome, bool wasProbe, TimeSpan retryAfter = default)
    {
        // A cancelled attempt and a failure of our own say nothing of the endpoint.
        if (outcome is not (AttemptOutcome.Cancelled or AttemptOutcome.Local))
        {
            var now = _registry.TimeProvider.GetTimestamp();
            var failed = outcome != AttemptOutcome.Success;
            snapshot.Policy.OnAttemptEnded(snapshot, endpoint.State, WithRetryAfter(now - startTimestamp, retryAfter), now, failed);
            endpoint.State.LastMinute?.Add(marked: failed, now);
        }

        Judge(endpoint, outcome, wasProbe);
    }

    /// <summary>
    /// Reads the load an endpoint reported in a response (ORCA's <c>endpoint-load-metrics</c>, <see cref="OrcaLoadReport"/>)
    /// into its <see cref="EndpointState.LoadReport"/>, when the service's policy weighs endpoints by it: no other policy
    /// pays for the header's lookup.
    /// </summary>
    public void RecordLoadReport(EndpointSnapshot snapshot, EndpointEntry endpoint, System.Net.Http.Headers.HttpHeaders headers)
    {
        if (snapshot.Policy.ReadsLoadReports && OrcaLoadReport.TryRead(headers, out var report))
        {
            endpoint.State.GetOrCreateLoadReport().Record(report, _registry.TimeProvider.GetTimestamp());
        }
    }

    /// <summary>
    /// Records the response headers of a gRPC call whose body is still open (<see cref="EndpointLease.Answered"/>): the
    /// time to them is a latency sample of a success. Returns the timestamp of the headers.
    /// </summary>
    public long RecordAnswer(EndpointSnapshot snapshot, EndpointEntry endpoint, long startTimestamp)
    {
        var now = _registry.TimeProvider.GetTimestamp();
        snapshot.Policy.OnAttemptEnded(snapshot, endpoint.State, now - startTimestamp, now, failed: false);
        return now;
    }

    /// <summary>
    /// Records how a gRPC call recorded by <see cref="RecordAnswer"/> ended, when its body ended: for outlier detection
    /// and the last-minute counts; a failure (a status in the trailers) also as a failure sample of the balancer, whose
    /// latency is the time to the headers (the penalty decides), never the time the stream stayed open. The attempt
    /// was counted once in flight and is released once (by the lease): nothing here touches the in-flight counts.
    /// </summary>
    public void RecordLateOutcome(EndpointSnapshot snapshot, EndpointEntry endpoint, long startTimestamp, long answeredAt, AttemptOutcome outcome, bool wasProbe, TimeSpan retryAfter = default)
    {
        if (outcome is not (AttemptOutcome.Cancelled or AttemptOutcome.Local))
        {
            var now = _registry.TimeProvider.GetTimestamp();
            var failed = outcome != AttemptOutcome.Success;
            if (failed)
            {
                snapshot.Policy.OnAttemptEnded(snapshot, endpoint.State, WithRetryAfter(answeredAt - startTimestamp, retryAfter), now, failed: true);
            }

            endpoint.State.LastMinute?.Add(marked: failed, now);
        }

        Judge(endpoint, outcome, wasProbe);
    }

    /// <summary>An attempt's duration, or the time its endpoint asked not to be called if longer (capped), in timestamp units.</summary>
    private long WithRetryAfter(long elapsed, TimeSpan retryAfter)
    {
        if (retryAfter <= TimeSpan.Zero)
        {
            return elapsed;
        }

        var asked = retryAfter < MaxRetryAfterSample ? retryAfter : MaxRetryAfterSample;
        return Math.Max(elapsed, (long)(asked.TotalSeconds * _registry.TimeProvider.TimestampFrequency));
    }

    private void Judge(EndpointEntry endpoint, AttemptOutcome outcome, bool wasProbe)
    {
        if (_registry.HealthObserver is { } observer)
        {
            observer.OnOutcome(this, endpoint, outcome, wasProbe);
        }
        else if (wasProbe)
        {
            endpoint.State.ReleaseProbe();
        }
    }

    /// <summary>
    /// Tells outlier detection that an endpoint answered with <c>Retry-After</c>: it asked not to be called for
    /// <paramref name="retryAfter"/>.
    /// </summary>
    public void RecordRetryAfter(EndpointEntry endpoint, TimeSpan retryAfter) =>
        _registry.HealthObserver?.OnRetryAfter(this, endpoint, retryAfter);

    /// <summary>Changes whether an endpoint takes traffic and publishes a new snapshot (<see cref="SnapshotPublisher.SetStatus"/>).</summary>
    public void SetStatus(EndpointState state, EndpointStatus status, bool rebuildLater = false) => _publisher.SetStatus(state, status, rebuildLater);

    /// <summary>Gets a value indicating whether a rebuild is queued or running.</summary>
    internal bool RebuildQueued => _publisher.RebuildQueued;

    /// <summary>Gets the number of snapshots built (diagnostics and tests).</summary>
    internal int SnapshotsBuilt => _publisher.Built;

    /// <summary>Completes when the queued rebuild (if any) has published its snapshot.</summary>
    internal Task WhenRebuiltAsync(CancellationToken cancellationToken) => _publisher.WhenRebuiltAsync(cancellationToken);

    private void OnTimer()
    {
        var now = _registry.TimeProvider.GetTimestamp();
        if (Interlocked.Exchange(ref _usedSinceTick, 0) == 1)
        {
            Volatile.Write(ref _lastUsed, now);

            // Keeps the resolver's watcher (and so the providers behind it) warm, and picks up polled changes of
            // providers without active change tokens.
            _ = RefreshAsync();
        }
        else if (_registry.TimeProvider.GetElapsedTime(Volatile.Read(ref _lastUsed), now) >= ServiceTableRegistry.IdleTimeout)
        {
            _registry.Evict(this);
        }
        else if (_resolution == ServiceResolution.Failed)
        {
            _ = RefreshAsync();
        }
    }

    private void OnSourceChanged() => _ = RefreshAsync();

    internal async Task RefreshAsync()
    {
        var cancellationToken = _disposed.Token;
        try
        {
            await _refreshLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            var source = await _registry.Resolver.GetEndpointsAsync(_query, cancellationToken).ConfigureAwait(false);
            Apply(source);
            if (_lastError is not null)
            {
                _lastError = null;
                Log.DiscoveryRecovered(_registry.Logger, ServiceName);
            }
        }
        catch (Exception) when (cancellationToken.IsCancellationRequested)
        {
            // Disposed (evicted, or the host is shutting down and the resolver may be gone): not a discovery failure.
        }
        catch (InvalidOperationException ex) when (ex.Message.StartsWith("No provider", StringComparison.Ordinal))
        {
            // No factory accepted the query: nobody knows the host.
            SetUnknown();
        }
        catch (Exception ex)
        {
            // Last known good: the current snapshot keeps serving; the timer retries.
            if (_lastError is null || _lastError.GetType() != ex.GetType())
            {
                Log.DiscoveryFailed(_registry.Logger, ServiceName, ex);
            }

            _registry.Telemetry.DiscoveryErrors.Add(1, new KeyValuePair<string, object?>(Telemetry.MeshTags.Service, ServiceName));

            _lastError = ex;
            if (_publisher.Current is null && _resolution != ServiceResolution.Unknown)
            {
                _resolution = ServiceResolution.Failed;
            }
        }
        finally
        {
            _refreshLock.Release();
            if (cancellationToken.IsCancellationRequested)
            {
                // A refresh that ended after Dispose may have registered a callback or added endpoints: let go of them.
                Release();
            }
        }

        if (!cancellationToken.IsCancellationRequested)
        {
            _registry.OnResolved(this);
        }
    }

    private void Apply(ServiceEndpointSource source)
    {
        // The resolver hands out the same source until discovery changes: problems with it are logged once.
        var newSource = !ReferenceEquals(source, _source);
        if (newSource)
        {
            _tokenRegistration?.Dispose();
            _source = source;

            // A token without active callbacks is polled by the resolver; the timer's periodic refresh reads it.
            _tokenRegistration = source.ChangeToken.ActiveChangeCallbacks
                ? source.ChangeToken.RegisterChangeCallback(static s => ((ServiceTable)s!).OnSourceChanged(), this)
                : null;
        }

        if (!newSource && _resolution == ServiceResolution.Known && ReferenceEquals(_appliedWith, _registry.Options.Current))
        {
            // The periodic refresh of a service in use: discovery handed back the source it had, under the same options
            // (so the same address filter). Nothing to rebuild, not even the entries: rebuilding them cost ~540 B per
            // endpoint every 5 s, and left the snapshot's entries and the table's as two copies (benchmarks/results/scale.md).
            // Only the time of the answer is kept, without a new record: such a tick allocates nothing.
            Volatile.Write(ref _refreshedTicks, _registry.TimeProvider.GetUtcNow().UtcTicks);
            return;
        }

        var feature = source.Features.Get<IMeshServiceFeature>();
        var endpoints = source.Endpoints;
        var known = feature is not null;
        if (!known && endpoints.Count > 0 && !IsPassThrough(endpoints))
        {
            known = true;
        }

        if (!known)
        {
            SetUnknown();
            return;
        }

        // Endpoints that join a service already in use enter slow start; those of a first resolution start together.
        _newEndpointsSlowStartSince = _resolution == ServiceResolution.Known ? _registry.TimeProvider.GetTimestamp() : 0;
        var entries = new List<EndpointEntry>(endpoints.Count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var allowed = _registry.GetAddressFilter();
        foreach (var endpoint in endpoints)
        {
            if (!_refusedLog.Allows(allowed, endpoint))
            {
                continue;
            }

            var entry = EndpointEntryFactory.Create(endpoint, GetOrAddState, out var rejection);
            if (entry is null)
            {
                if (newSource)
                {
                    Log.UnsupportedEndpoint(_registry.Logger, ServiceName, Describe(endpoint.EndPoint), rejection ?? "unsupported");
                }
            }
            else if (seen.Add(entry.Id))
            {
                entries.Add(entry);
            }
            else if (newSource)
            {
                // The first endpoint with an id keeps it (its live state is shared by id); the others are not used.
                Log.DuplicateEndpoint(_registry.Logger, ServiceName, entry.Id, entry.Address);
            }
        }

        _refusedLog.EndPass();

        foreach (var id in _states.Keys)
        {
            if (!seen.Contains(id) && _states.TryRemove(id, out var removed))
            {
                _registry.HealthObserver?.OnRemoved(removed);
            }
        }

        var changed = _resolution != ServiceResolution.Known || !SameEndpoints(_entries, entries);
        _entries = [.. entries];
        _appliedWith = allowed.Options;
        _publisher.SetEntries(_entries);

        var now = _registry.TimeProvider.GetUtcNow();
        _discovery = new DiscoveryInfo(feature?.ProviderName, changed ? now : _discovery?.Updated ?? now, now);

        // The periodic refresh gets the same source and options back while nothing changed: nothing to rebuild (a
        // rebuild of 10,000 endpoints is work, and it holds the table lock).
        if (changed || newSource || !ReferenceEquals(_publisher.BuiltWith, _registry.Options.Current))
        {
            _publisher.Rebuild();
        }

        // Known only once the snapshot is out: a reader that sees Known without a snapshot (a route's backend check)
        // would take the service for one nobody knows.
        _resolution = ServiceResolution.Known;

        if (changed)
        {
            Log.EndpointsChanged(_registry.Logger, ServiceName, entries.Count, _publisher.Current!.Policy.Name);
            _registry.Telemetry.DiscoveryUpdates.Add(1, new KeyValuePair<string, object?>(Telemetry.MeshTags.Service, ServiceName));
        }
    }

    private EndpointState GetOrAddState(string id)
    {
        if (_states.TryGetValue(id, out var state))
        {
            return state;
        }

        // Only Apply adds states, under the refresh lock.
        state = new EndpointState(id, _registry.TimeProvider) { SlowStartSince = _newEndpointsSlowStartSince };
        return _states.GetOrAdd(id, state);
    }

    private void SetUnknown()
    {
        _resolution = ServiceResolution.Unknown;
        _publisher.Clear();
        _entries = [];

        foreach (var state in _states.Values)
        {
            _registry.HealthObserver?.OnRemoved(state);
        }

        _states.Clear();
    }

    /// <summary>An endpoint for a log line: never the user info of a URI, never an unbounded string.</summary>
    private static string Describe(EndPoint endPoint)
    {
        var text = endPoint is UriEndPoint { Uri: { IsAbsoluteUri: true } uri }
            ? uri.GetComponents(UriComponents.Scheme | UriComponents.Host | UriComponents.Port | UriComponents.Path, UriFormat.UriEscaped)
            : endPoint.ToString() ?? endPoint.GetType().Name;
        return text.Length <= 128 ? text : string.Concat(text.AsSpan(0, 128), "…");
    }

    private bool IsPassThrough(IReadOnlyList<ServiceEndpoint> endpoints) =>
        endpoints.Count == 1
        && endpoints[0].EndPoint is DnsEndPoint dns
        && string.Equals(dns.Host, ServiceName, StringComparison.OrdinalIgnoreCase)
        && endpoints[0].Features.Get<IMeshEndpointFeature>() is null;

    private static bool SameEndpoints(EndpointEntry[] current, List<EndpointEntry> next)
    {
        if (current.Length != next.Count)
        {
            return false;
        }

        for (var i = 0; i < current.Length; i++)
        {
            var a = current[i];
            var b = next[i];
            if (a.Id != b.Id || a.Weight != b.Weight || a.Zone != b.Zone || a.Address != b.Address
                || !(a.ForZones ?? []).AsSpan().SequenceEqual(b.ForZones ?? []))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>What discovery last said about a service.</summary>
    /// <param name="Source">
    /// The name of the provider that knows the service (its <see cref="IMeshServiceFeature"/>), or
    /// <see langword="null"/> when the provider did not say (the standard configuration provider, pass-through).
    /// </param>
    /// <param name="Updated">When discovery last changed the endpoints.</param>
    /// <param name="Refreshed">When discovery last answered.</param>
    internal sealed record DiscoveryInfo(string? Source, DateTimeOffset Updated, DateTimeOffset Refreshed);

    public void Dispose()
    {
        _disposed.Cancel();
        _timer.Dispose();
        _publisher.Dispose();

        Release();
    }

    /// <summary>Lets go of the change-token registration and of every endpoint's health data (idempotent).</summary>
    private void Release()
    {
        Interlocked.Exchange(ref _tokenRegistration, null)?.Dispose();
        foreach (var state in _states.Values)
        {
            _registry.HealthObserver?.OnRemoved(state);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(100, LogLevel.Information, "Service {Service}: {Count} endpoint(s), load balancer {Policy}.", EventName = "EndpointsChanged")]
        public static partial void EndpointsChanged(ILogger logger, string service, int count, string policy);

        [LoggerMessage(101, LogLevel.Warning, "Service {Service}: discovery failed; the last known endpoints keep serving.", EventName = "DiscoveryFailed")]
        public static partial void DiscoveryFailed(ILogger logger, string service, Exception exception);

        [LoggerMessage(102, LogLevel.Information, "Service {Service}: discovery recovered.", EventName = "DiscoveryRecovered")]
        public static partial void DiscoveryRecovered(ILogger logger, string service);

        [LoggerMessage(103, LogLevel.Warning, "Service {Service}: ignored endpoint {Endpoint}: {Reason}.", EventName = "UnsupportedEndpoint")]
        public static partial void UnsupportedEndpoint(ILogger logger, string service, string endpoint, string reason);

        [LoggerMessage(106, LogLevel.Warning, "Service {Service}: ignored endpoint {Address}: its id {Id} is taken by an earlier endpoint.", EventName = "DuplicateEndpoint")]
        public static partial void DuplicateEndpoint(ILogger logger, string service, string id, string address);
    }
}
