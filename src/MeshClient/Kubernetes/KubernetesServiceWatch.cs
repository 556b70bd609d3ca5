using MeshClient.Discovery;
using MeshClient.Model;
using Microsoft.Extensions.Logging;
using k8s.Models;

namespace MeshClient.Kubernetes;

/// <summary>
/// The list-then-watch loop of one Kubernetes service: lists every EndpointSlice of the service, then watches from
/// the list's resourceVersion (with bookmarks), merging every slice; resumes each renewed or dropped watch from the
/// last resourceVersion seen; lists again on 410 Gone; backs off with jitter on errors while the last known
/// endpoints keep serving. Each event that changes the routable set fires the change token at once. Owned by
/// <see cref="KubernetesWatchCache"/>, which ends it once no provider has used it for the idle period.
/// </summary>
internal sealed partial class KubernetesServiceWatch : IServiceWatch<KubernetesServiceState>, IDisposable
{
    private const int MaxRejectionsLogged = 5;

    private readonly KubernetesApiClient _client;
    private readonly Randomizer _random;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _firstAttempt = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Dictionary<string, V1EndpointSlice> _slices = new(StringComparer.Ordinal);
    private readonly Lock _slicesLock = new(); // guards the slices, the published state and what was rejected
    private volatile KubernetesServiceState _state = KubernetesServiceState.Initial();
    private Task _loop = Task.CompletedTask;
    private KubernetesFailureKind? _failure;
    private List<string> _rejected = [];
    private long _lists;
    private long _watches;

    public KubernetesServiceWatch(KubernetesServiceName service, KubernetesApiClient client, Randomizer random, ILogger logger)
    {
        Service = service;
        _client = client;
        _random = random;
        _logger = logger;
    }

    public KubernetesServiceName Service { get; }

    /// <summary>Gets the last-known-good state.</summary>
    public KubernetesServiceState State => _state;

    /// <summary>Completes when the first list has been answered or has failed.</summary>
    public Task FirstAttempt => _firstAttempt.Task;

    /// <summary>Gets the number of list requests sent (tests and diagnostics).</summary>
    public long Lists => Interlocked.Read(ref _lists);

    /// <summary>Gets the number of watch requests sent (tests and diagnostics).</summary>
    public long Watches => Interlocked.Read(ref _watches);

    /// <summary>Gets the resourceVersion the next watch resumes from (tests).</summary>
    internal string? ResourceVersion { get; private set; }

    /// <summary>Waits for the loop to end (tests).</summary>
    internal Task Completion => _loop;

    public void Start()
    {
        Log.WatchStarted(_logger, Service.Name, Service.Namespace);
        _loop = Task.Run(RunAsync);
    }

    private async Task RunAsync()
    {
        var stopping = _stop.Token;
        var failures = 0;
        string? resourceVersion = null;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                if (resourceVersion is null)
                {
                    Interlocked.Increment(ref _lists);
                    var list = await _client.ListAsync(Service, stopping).ConfigureAwait(false);
                    lock (_slicesLock)
                    {
                        _slices.Clear();
                        foreach (var slice in list.Items ?? [])
                        {
                            if (slice?.Metadata?.Name is { } name)
                            {
                                _slices[name] = slice;
                            }
                        }
                    }

                    resourceVersion = list.Metadata.ResourceVersion;
                    ResourceVersion = resourceVersion;
                    Publish();
                    OnSuccess();
                    failures = 0;
                }

                Interlocked.Increment(ref _watches);
                var started = _client.TimeProvider.GetTimestamp();
                var events = 0;
                try
                {
                    await foreach (var watchEvent in _client.WatchAsync(Service, resourceVersion, stopping).ConfigureAwait(false))
                    {
                        if (events++ == 0)
                        {
                            OnSuccess();
                            failures = 0;
                        }

                        Apply(watchEvent);
                        if (watchEvent.ResourceVersion is { Length: > 0 } next)
                        {
                            resourceVersion = next;
                            ResourceVersion = next;
                        }
                    }
                }
                catch (KubernetesException ex) when (ex.Kind == KubernetesFailureKind.StreamEnded && !stopping.IsCancellationRequested)
                {
                    // Routine (an API server restarting, an idle cut): resume at once from the last resourceVersion.
                    Log.WatchDropped(_logger, Service.Name, Service.Namespace, resourceVersion);
                }

                // The server ended the watch (timeoutSeconds) or it was cut: renew it from the last resourceVersion. A
                // watch that ends at once with nothing in it, again and again, is a server in trouble: back off.
                if (events == 0 && _client.TimeProvider.GetElapsedTime(started) < TimeSpan.FromSeconds(1))
                {
                    failures++;
                    await DelayAsync(failures, stopping).ConfigureAwait(false);
                }
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                // Ended (idle, or the host is shutting down): not a failure.
                break;
            }
            catch (KubernetesException ex) when (ex.Kind == KubernetesFailureKind.Gone)
            {
                // The resourceVersion is older than the server keeps: list again, at once. Endpoints serve meanwhile.
                Log.ResourceVersionExpired(_logger, Service.Name, Service.Namespace, resourceVersion);
                resourceVersion = null;
            }
            catch (Exception ex)
            {
                var failure = ex as KubernetesException
                    ?? new KubernetesException(KubernetesFailureKind.InvalidResponse, $"Kubernetes service {Service}: the answer could not be used ({ex.GetType().Name}).");
                failures++;
                OnFailure(failure);
                _firstAttempt.TrySetResult();
                try
                {
                    // The next watch resumes from the last resourceVersion (a 410 then leads to a list).
                    await DelayAsync(failures, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        _firstAttempt.TrySetResult();
    }

    private Task DelayAsync(int failures, CancellationToken cancellationToken)
    {
        var options = _client.Options;
        var exponent = Math.Min(failures - 1, 30);
        var ticks = Math.Min((double)options.RetryMaxDelay.Ticks, options.RetryBaseDelay.Ticks * Math.Pow(2, exponent));
        var delay = TimeSpan.FromTicks((long)((ticks / 2) + (_random.NextDouble() * ticks / 2)));
        return Task.Delay(delay, _client.TimeProvider, cancellationToken);
    }

    private void Apply(KubernetesWatchEvent watchEvent)
    {
        var name = watchEvent.Slice?.Metadata?.Name;
        lock (_slicesLock)
        {
            switch (watchEvent.Type)
            {
                case "ADDED" or "MODIFIED" when name is not null:
                    _slices[name] = watchEvent.Slice!;
                    break;
                case "DELETED" when name is not null:
                    _slices.Remove(name);
                    break;
                default:
                    // BOOKMARK: only the resourceVersion moves.
                    return;
            }
        }

        Publish();
    }

    /// <summary>Builds the routable set from the slices and fires the change token if it changed.</summary>
    internal void Publish()
    {
        lock (_slicesLock)
        {
            PublishLocked();
        }

        _firstAttempt.TrySetResult();
    }

    private void PublishLocked()
    {
        V1EndpointSlice[] slices = [.. _slices.Values];

        var rejected = new List<string>();
        var portName = _client.Options.Services.TryGetValue(Service.Name, out var settings) ? settings.PortName : null;
        var instances = KubernetesServiceState.Select(slices, portName, rejected);
        if (!rejected.SequenceEqual(_rejected, StringComparer.Ordinal))
        {
            _rejected = rejected;
            if (rejected.Count > 0)
            {
                Log.EndpointsRejected(_logger, Service.Name, Service.Namespace, rejected.Count, string.Join("; ", rejected.Take(MaxRejectionsLogged)));
            }
        }

        var current = _state;
        _state = current.Next(slices.Length > 0, instances, out var changed);
        if (changed)
        {
            Log.ServiceChanged(_logger, Service.Name, Service.Namespace, instances.Length, slices.Length);
            current.NotifyChanged();
        }
    }

    private void OnSuccess()
    {
        _client.ReportSuccess(Service);
        if (_failure is not null)
        {
            _failure = null;
            Log.ServiceRecovered(_logger, Service.Name, Service.Namespace);
        }
    }

    private void OnFailure(KubernetesException exception)
    {
        _client.ReportFailure(exception, Service);
        if (_failure == exception.Kind)
        {
            return;
        }

        _failure = exception.Kind;
        if (exception.Kind == KubernetesFailureKind.InvalidResponse)
        {
            Log.InvalidResponse(_logger, Service.Name, Service.Namespace, exception.Message);
        }
        else
        {
            Log.ServiceFailing(_logger, Service.Name, Service.Namespace, exception.Kind);
        }
    }

    /// <summary>Ends the loop without firing the change token (nobody listens any more).</summary>
    public void Dispose()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        _stop.Cancel();
        Log.WatchEnded(_logger, Service.Name, Service.Namespace);
    }

    private static partial class Log
    {
        [LoggerMessage(418, LogLevel.Debug, "Kubernetes service {Service} in {Namespace}: the watch was cut; resuming from resourceVersion {ResourceVersion}.", EventName = "KubernetesWatchDropped")]
        public static partial void WatchDropped(ILogger logger, string service, string @namespace, string? resourceVersion);

        [LoggerMessage(410, LogLevel.Debug, "Kubernetes service {Service} in {Namespace}: {Count} routable endpoint(s) in {Slices} EndpointSlice(s).", EventName = "KubernetesServiceChanged")]
        public static partial void ServiceChanged(ILogger logger, string service, string @namespace, int count, int slices);

        [LoggerMessage(411, LogLevel.Debug, "Kubernetes service {Service} in {Namespace}: list or watch fails ({Kind}); its last known endpoints keep serving.", EventName = "KubernetesServiceFailing")]
        public static partial void ServiceFailing(ILogger logger, string service, string @namespace, KubernetesFailureKind kind);

        [LoggerMessage(412, LogLevel.Warning, "Kubernetes service {Service} in {Namespace}: rejected an answer ({Reason}); its last known endpoints keep serving.", EventName = "KubernetesInvalidResponse")]
        public static partial void InvalidResponse(ILogger logger, string service, string @namespace, string reason);

        [LoggerMessage(413, LogLevel.Debug, "Kubernetes service {Service} in {Namespace}: list and watch succeed again.", EventName = "KubernetesServiceRecovered")]
        public static partial void ServiceRecovered(ILogger logger, string service, string @namespace);

        [LoggerMessage(414, LogLevel.Debug, "Kubernetes service {Service} in {Namespace}: resourceVersion {ResourceVersion} expired (410 Gone); listing again.", EventName = "KubernetesResourceVersionExpired")]
        public static partial void ResourceVersionExpired(ILogger logger, string service, string @namespace, string? resourceVersion);

        [LoggerMessage(415, LogLevel.Debug, "Kubernetes service {Service} in {Namespace}: watch started.", EventName = "KubernetesWatchStarted")]
        public static partial void WatchStarted(ILogger logger, string service, string @namespace);

        [LoggerMessage(416, LogLevel.Debug, "Kubernetes service {Service} in {Namespace}: watch ended (not used any more).", EventName = "KubernetesWatchEnded")]
        public static partial void WatchEnded(ILogger logger, string service, string @namespace);

        [LoggerMessage(417, LogLevel.Warning, "Kubernetes service {Service} in {Namespace}: ignored {Count} endpoint(s) or slice(s) that cannot be called: {Reasons}.", EventName = "KubernetesEndpointsRejected")]
        public static partial void EndpointsRejected(ILogger logger, string service, string @namespace, int count, string reasons);
    }
}
