using MeshClient.Discovery;
using MeshClient.Model;
using Microsoft.Extensions.Logging;

namespace MeshClient.Consul;

/// <summary>
/// The long-lived blocking-query loop of one Consul service: one request in flight at a time (so at most one
/// connection), the index rules of reference/consul-http-api.md §2.1, a change token fired only when the discoverable
/// set changes, last-known-good through every failure, and exponential backoff with jitter. Owned by
/// <see cref="ConsulCatalogCache"/>, which ends it once no provider has used it for the idle period.
/// </summary>
internal sealed partial class ConsulServiceWatch : IServiceWatch<ConsulServiceState>, IDisposable
{
    // Churn limiter (§2.1 "Rate limit"): a token bucket with a burst of 3 lets the happy path proceed without
    // waiting, and degrades a service whose index moves all the time into at most two queries a second.
    private const double BucketCapacity = 3;
    private static readonly TimeSpan BucketRefill = TimeSpan.FromMilliseconds(500);
    private const int MaxRejectionsLogged = 5;

    private readonly ConsulClient _client;
    private readonly Randomizer _random;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _firstAttempt = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _iterationLock = new();
    private volatile ConsulServiceState _state = ConsulServiceState.Initial();
    private CancellationTokenSource? _iteration;
    private Task _loop = Task.CompletedTask;
    private double _bucket = BucketCapacity;
    private long _bucketStamp;
    private ConsulFailureKind? _failure;
    private long _queries;
    private long _retriesScheduled;
    private List<string> _rejected = [];

    public ConsulServiceWatch(string serviceName, ConsulClient client, Randomizer random, ILogger logger)
    {
        ServiceName = serviceName;
        _client = client;
        _random = random;
        _logger = logger;
    }

    public string ServiceName { get; }

    /// <summary>Gets the last-known-good state.</summary>
    public ConsulServiceState State => _state;

    /// <summary>Completes when the first query has been answered or has failed.</summary>
    public Task FirstAttempt => _firstAttempt.Task;

    /// <summary>Gets the number of queries sent (for tests and diagnostics).</summary>
    public long Queries => Interlocked.Read(ref _queries);

    /// <summary>Gets the number of retries scheduled after a failure, counted once the delay runs (tests).</summary>
    internal long RetriesScheduled => Interlocked.Read(ref _retriesScheduled);

    /// <summary>Gets the delay of the last retry scheduled (tests).</summary>
    internal TimeSpan LastRetryDelay { get; private set; }

    public void Start()
    {
        _bucketStamp = _client.TimeProvider.GetTimestamp();
        Log.WatchStarted(_logger, ServiceName);
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Abandons the request in flight (or the backoff delay) and queries again without blocking.</summary>
    public void Restart()
    {
        lock (_iterationLock)
        {
            _iteration?.Cancel();
        }
    }

    private async Task RunAsync()
    {
        var stopping = _stop.Token;
        ulong index = 0;
        var failures = 0;
        while (!stopping.IsCancellationRequested)
        {
            CancellationTokenSource iteration;
            lock (_iterationLock)
            {
                iteration = _iteration = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            }

            try
            {
                await TakeQueryTokenAsync(iteration.Token).ConfigureAwait(false);
                Interlocked.Increment(ref _queries);
                var result = await _client.GetHealthServiceAsync(ServiceName, index, iteration.Token).ConfigureAwait(false);
                var next = ConsulBlockingRules.NextIndex(index, result.Index);
                if (next == 0)
                {
                    Log.IndexWentBackwards(_logger, ServiceName, index, result.Index);
                }

                Publish(result.Value, result.Index);
                index = next;
                failures = 0;
                _client.ReportSuccess();
                if (_failure is not null)
                {
                    _failure = null;
                    Log.ServiceRecovered(_logger, ServiceName);
                }

                _firstAttempt.TrySetResult();
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                // Ended (idle, or the host is shutting down and the client may be disposed): not a failure.
                break;
            }
            catch (OperationCanceledException) when (iteration.IsCancellationRequested)
            {
                // Restarted (the options changed): query again at once, without blocking.
                index = 0;
                failures = 0;
            }
            catch (Exception ex)
            {
                var failure = ex as ConsulException
                    ?? new ConsulException(ConsulFailureKind.InvalidResponse, $"Consul service {ServiceName}: the answer could not be used ({ex.GetType().Name}).", innerException: ex);
                failures++;

                // After a failure the next query does not block: the agent may have restarted with another index
                // (a stale index could then block for the whole wait while the data changed).
                index = 0;
                OnFailure(failure);
                _firstAttempt.TrySetResult();
                var delay = ConsulBlockingRules.RetryDelay(failures, _client.Options.RetryBaseDelay, _client.Options.RetryMaxDelay, _random);
                try
                {
                    var retry = Task.Delay(delay, _client.TimeProvider, iteration.Token);
                    LastRetryDelay = delay;
                    Interlocked.Increment(ref _retriesScheduled);
                    await retry.ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    break;
                }
                catch (OperationCanceledException)
                {
                    index = 0;
                    failures = 0;
                }
            }
            finally
            {
                lock (_iterationLock)
                {
                    _iteration = null;
                }

                iteration.Dispose();
            }
        }

        _firstAttempt.TrySetResult();
    }

    private async Task TakeQueryTokenAsync(CancellationToken cancellationToken)
    {
        var time = _client.TimeProvider;
        var now = time.GetTimestamp();
        _bucket = Math.Min(BucketCapacity, _bucket + (time.GetElapsedTime(_bucketStamp, now) / BucketRefill));
        _bucketStamp = now;
        if (_bucket < 1)
        {
            var wait = (1 - _bucket) * BucketRefill;
            await Task.Delay(wait, time, cancellationToken).ConfigureAwait(false);
            _bucket = 1;
            _bucketStamp = time.GetTimestamp();
        }

        _bucket -= 1;
    }

    private void Publish(ConsulHealthServiceEntry[] entries, ulong index)
    {
        var rejected = new List<string>();
        var instances = ConsulServiceState.Select(entries, _client.Options, rejected);

        // Logged once per change of what is rejected, not on every answer.
        if (!rejected.SequenceEqual(_rejected, StringComparer.Ordinal))
        {
            _rejected = rejected;
            if (rejected.Count > 0)
            {
                Log.InstancesRejected(_logger, ServiceName, rejected.Count, string.Join("; ", rejected.Take(MaxRejectionsLogged)));
            }
        }

        var current = _state;
        var next = current.Next(entries.Length > 0, instances, entries.Length, index, out var changed);
        _state = next;
        if (changed)
        {
            Log.ServiceChanged(_logger, ServiceName, instances.Length, entries.Length, index);
            current.NotifyChanged();
        }
    }

    private void OnFailure(ConsulException exception)
    {
        _client.ReportFailure(exception);
        if (_failure == exception.Kind)
        {
            return;
        }

        _failure = exception.Kind;
        if (exception.Kind == ConsulFailureKind.InvalidResponse)
        {
            Log.InvalidResponse(_logger, ServiceName, exception.Message);
        }
        else
        {
            Log.ServiceFailing(_logger, ServiceName, exception.Kind);
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
        Log.WatchEnded(_logger, ServiceName);
    }

    /// <summary>Waits for the loop to end (tests).</summary>
    internal Task Completion => _loop;

    private static partial class Log
    {
        [LoggerMessage(303, LogLevel.Debug, "Consul service {Service}: {Count} discoverable instance(s) of {Registered} registered (index {Index}).", EventName = "ConsulServiceChanged")]
        public static partial void ServiceChanged(ILogger logger, string service, int count, int registered, ulong index);

        [LoggerMessage(304, LogLevel.Debug, "Consul service {Service}: queries fail ({Kind}); its last known endpoints keep serving.", EventName = "ConsulServiceFailing")]
        public static partial void ServiceFailing(ILogger logger, string service, ConsulFailureKind kind);

        [LoggerMessage(305, LogLevel.Warning, "Consul service {Service}: rejected an answer ({Reason}); its last known endpoints keep serving.", EventName = "ConsulInvalidResponse")]
        public static partial void InvalidResponse(ILogger logger, string service, string reason);

        [LoggerMessage(306, LogLevel.Debug, "Consul service {Service}: queries succeed again.", EventName = "ConsulServiceRecovered")]
        public static partial void ServiceRecovered(ILogger logger, string service);

        [LoggerMessage(307, LogLevel.Debug, "Consul service {Service}: the index went backwards ({Previous} -> {Returned}); restarting the blocking loop.", EventName = "ConsulIndexReset")]
        public static partial void IndexWentBackwards(ILogger logger, string service, ulong previous, ulong returned);

        [LoggerMessage(308, LogLevel.Debug, "Consul service {Service}: watch started.", EventName = "ConsulWatchStarted")]
        public static partial void WatchStarted(ILogger logger, string service);

        [LoggerMessage(318, LogLevel.Warning, "Consul service {Service}: ignored {Count} instance(s) that cannot be endpoints: {Reasons}.", EventName = "ConsulInstancesRejected")]
        public static partial void InstancesRejected(ILogger logger, string service, int count, string reasons);

        [LoggerMessage(309, LogLevel.Debug, "Consul service {Service}: watch ended (not used any more).", EventName = "ConsulWatchEnded")]
        public static partial void WatchEnded(ILogger logger, string service);
    }
}
