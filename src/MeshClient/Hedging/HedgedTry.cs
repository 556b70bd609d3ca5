using System.Diagnostics;
using System.Runtime.ExceptionServices;
using MeshClient.Model;
using MeshClient.Telemetry;

namespace MeshClient.Hedging;

/// <summary>
/// One try of a call's retry loop, hedged: the first attempt goes out at once; each time the hedge delay passes with no
/// answer, another attempt of the same request (a copy, <see cref="HedgeRequest.Clone"/>) goes to an endpoint the
/// balancer picks among those the call has not tried (<see cref="MeshRequestContext.UntriedOnly"/>), up to
/// <c>MaxAttempts</c> in all, while the hedge budget, the call's deadline and its cancellation allow. The first answer
/// that the retry loop would not retry wins; the others are cancelled (never charged to their endpoints,
/// <see cref="MeshRequestContext.HedgeSettled"/>) and disposed. A retryable answer (a 5xx, a connection failure) wins
/// only when nothing else is in flight: the retry loop then sees the last failure, as without hedging.
/// </summary>
/// <remarks>
/// Self-contained: it needs only "send one attempt" (the handler below it, through the balancer). The first attempt
/// sends the caller's own request; it is awaited after it lost (its cancellation ends it at once) so that the request
/// is the caller's again, with its URI restored, when the try returns. Hedges are not awaited: each disposes its copy
/// and its answer when it ends.
/// </remarks>
internal sealed class HedgedTry
{
    private readonly HedgingPolicy _policy;
    private readonly HttpRequestMessage _request;
    private readonly MeshRequestContext _call;
    private readonly Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> _send;
    private readonly Uri _uri;
    private readonly string? _callerHost;
    private readonly long _start;
    private readonly CancellationToken _cancellationToken;
    private readonly TryAttempt[] _attempts;
    private int _launched;
    private int _hedges;
    private bool _canHedge = true;

    private HedgedTry(HedgingPolicy policy, HttpRequestMessage request, MeshRequestContext call, Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> send, Uri uri, string? callerHost, long start, CancellationToken cancellationToken)
    {
        _policy = policy;
        _request = request;
        _call = call;
        _send = send;
        _uri = uri;
        _callerHost = callerHost;
        _start = start;
        _cancellationToken = cancellationToken;
        _attempts = new TryAttempt[policy.Settings.MaxAttempts];
    }

    /// <summary>Runs one hedged try of <paramref name="request"/>, each attempt through <paramref name="send"/>.</summary>
    /// <param name="policy">The hedging of the call's service.</param>
    /// <param name="request">The caller's request (the first attempt sends it; hedges send copies).</param>
    /// <param name="call">The call's mesh context.</param>
    /// <param name="send">Sends one attempt: picks its endpoint, rewrites, sends (the balancing handler).</param>
    /// <param name="cancellationToken">The try's token (the caller's, bounded by the total timeout).</param>
    public static async Task<HttpResponseMessage> SendAsync(HedgingPolicy policy, HttpRequestMessage request, MeshRequestContext call, Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> send, CancellationToken cancellationToken)
    {
        var start = policy.Time.GetTimestamp();
        policy.Budget.OnRequest();
        var uri = request.RequestUri!; // before the balancer rewrites it for the first attempt
        var callerHost = request.Headers.Host; // the caller's own, if any: the balancer sets (and clears) one per attempt
        var picked = call.Attempts;
        var primaryCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task<HttpResponseMessage> primary;
        try
        {
            primary = send(request, primaryCts.Token);
        }
        catch
        {
            primaryCts.Dispose();
            throw;
        }

        if (primary.IsCompleted || call.Attempts != picked + 1)
        {
            // Answered at once, or no endpoint picked (a host outside the mesh, or a first call waiting for discovery,
            // whose hedge would wait with it): nothing to hedge against.
            try
            {
                var response = await primary.ConfigureAwait(false);
                RecordAnswer(policy, start, response);
                return response;
            }
            finally
            {
                primaryCts.Dispose();
            }
        }

        var race = new HedgedTry(policy, request, call, send, uri, callerHost, start, cancellationToken);
        return await race.RunAsync(primary, primaryCts, call.LastEndpoint).ConfigureAwait(false);
    }

    private async Task<HttpResponseMessage> RunAsync(Task<HttpResponseMessage> primary, CancellationTokenSource primaryCts, EndpointEntry? primaryEndpoint)
    {
        _attempts[0] = new TryAttempt(primary, _request, primaryCts, primaryEndpoint);
        _launched = 1;
        var pending = 1;
        var winner = -1;
        HttpResponseMessage? result = null;
        HttpResponseMessage? failedResponse = null;
        ExceptionDispatchInfo? failure = null;
        var delay = _policy.Delay(_start);
        using var timers = CancellationTokenSource.CreateLinkedTokenSource(_cancellationToken);
        Task? nextHedge = Task.Delay(delay, _policy.Time, timers.Token);
        var waiting = new List<Task>(_attempts.Length + 1);
        try
        {
            while (true)
            {
                waiting.Clear();
                for (var i = 0; i < _launched; i++)
                {
                    if (!_attempts[i].Done)
                    {
                        waiting.Add(_attempts[i].Task);
                    }
                }

                if (nextHedge is not null)
                {
                    waiting.Add(nextHedge);
                }

                var done = await Task.WhenAny(waiting).ConfigureAwait(false);
                if (ReferenceEquals(done, nextHedge))
                {
                    nextHedge = null;
                    if (_canHedge && TryHedge(delay))
                    {
                        pending++;
                        if (_canHedge && _launched < _attempts.Length)
                        {
                            nextHedge = Task.Delay(delay, _policy.Time, timers.Token);
                        }
                    }

                    continue;
                }

                var index = IndexOf(done);
                _attempts[index].Done = true;
                pending--;
                if (done.IsCompletedSuccessfully)
                {
                    var response = await ((Task<HttpResponseMessage>)done).ConfigureAwait(false); // completed: no wait
                    if (OutcomeClassifier.RetryReason(response, null, out _) is null)
                    {
                        winner = index;
                        result = await WinAsync(index, response).ConfigureAwait(false);
                        return result;
                    }

                    // An answer the retry loop would retry: it stands only if nothing else answers.
                    failedResponse?.Dispose();
                    failedResponse = response;
                    failure = null;
                }
                else if (IsNotSent(index, done))
                {
                    // A hedge that found no endpoint the call had not tried: nothing was sent, nothing is owed.
                    _policy.Budget.Refund();
                    _hedges--;
                    _canHedge = false;
                }
                else
                {
                    failedResponse?.Dispose();
                    failedResponse = null;
                    failure = ExceptionDispatchInfo.Capture(ExceptionOf(done));
                }

                if (pending == 0)
                {
                    // Every attempt in flight failed: the retry loop sees the last failure, as without hedging.
                    if (failedResponse is not null)
                    {
                        result = failedResponse;
                        failedResponse = null;
                        result.RequestMessage = _request;
                        return result;
                    }

                    failure!.Throw();
                }
            }
        }
        finally
        {
            await timers.CancelAsync().ConfigureAwait(false); // frees a hedge timer still running
            failedResponse?.Dispose();
            Release();
            if (_hedges > 0)
            {
                Report(winner);
            }

            _call.SetUntriedOnly(false);
        }
    }

    /// <summary>
    /// Sends a hedge when the call may have one: not cancelled, under <c>MaxAttempts</c>, time enough left before its
    /// deadline (at least the delay: an answer as slow as the one awaited would not make it), and a hedge in the budget.
    /// </summary>
    private bool TryHedge(TimeSpan delay)
    {
        if (_cancellationToken.IsCancellationRequested || _launched >= _attempts.Length
            || (_call.Remaining(_policy.Time) is { } left && (left <= TimeSpan.Zero || left < delay)))
        {
            _canHedge = false;
            return false;
        }

        if (!_policy.Budget.TryWithdraw())
        {
            _canHedge = false;
            if (_policy.Telemetry.HedgeBudgetExhausted.Enabled)
            {
                _policy.Telemetry.HedgeBudgetExhausted.Add(1, _policy.ServiceTag);
            }

            MeshInstrumentation.AddEvent("mesh.hedge_budget.exhausted", MeshTags.Service, _policy.ServiceName);
            return false;
        }

        if (_launched == 1)
        {
            _call.EnterConcurrentAttempts();
            _call.SetHedgeSettled(false);
        }

        var clone = HedgeRequest.Clone(_request, _uri, _callerHost);
        var cts = CancellationTokenSource.CreateLinkedTokenSource(_cancellationToken);
        _call.SetUntriedOnly(true); // never the endpoint an attempt already waits on
        var picked = _call.Attempts;
        Task<HttpResponseMessage> task;
        try
        {
            task = _send(clone, cts.Token);
        }
        catch (Exception ex)
        {
            task = Task.FromException<HttpResponseMessage>(ex);
        }

        EndpointEntry? endpoint = null;
        if (_call.Attempts == picked + 1)
        {
            endpoint = _call.LastEndpoint; // picked during the send's synchronous start, after every earlier pick
        }
        else if (task.IsCompleted)
        {
            // No endpoint the call has not tried could take it: nothing was sent.
            _call.SetUntriedOnly(false);
            _ = DrainAsync(new TryAttempt(task, clone, cts, null)); // completed: ends at once, as a lost hedge's would
            _policy.Budget.Refund();
            _canHedge = false;
            return false;
        }
        else
        {
            // Its pick waits for the service's next snapshot: no further hedge, so that picks stay one at a time.
            _canHedge = false;
        }

        _attempts[_launched++] = new TryAttempt(task, clone, cts, endpoint);
        _hedges++;
        MeshInstrumentation.AddEvent("mesh.hedge", MeshTags.Hedges, _launched - 1);
        return true;
    }

    /// <summary>
    /// Ends the try with <paramref name="response"/>: marks the call settled, cancels every other attempt, waits for the
    /// first one when it lost (the caller's request is then free again) and returns the answer as the caller's.
    /// </summary>
    private async Task<HttpResponseMessage> WinAsync(int index, HttpResponseMessage response)
    {
        var firstStillWaiting = !_attempts[0].Done; // read before the loser is awaited below
        if (_launched > 1)
        {
            _call.SetHedgeSettled(true); // before any cancellation: the losers are charged to nothing
            if (_attempts[index].Endpoint is { } endpoint)
            {
                _call.OnServedBy(endpoint);
            }

            for (var i = 0; i < _launched; i++)
            {
                if (i != index && !_attempts[i].Done)
                {
                    await _attempts[i].Cts.CancelAsync().ConfigureAwait(false);
                }
            }

            if (index != 0 && !_attempts[0].Done)
            {
                try
                {
                    using var lost = await _attempts[0].Task.ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // The first attempt's end, as it lost: its endpoint was charged nothing (HedgeSettled).
                }

                _attempts[0].Done = true;
            }

            response.RequestMessage = _request;
        }

        if (index == 0)
        {
            RecordAnswer(_policy, _start, response);
        }
        else if (firstStillWaiting && _policy.Latency is not null)
        {
            _policy.RecordOutlasted(_policy.Time.GetTimestamp());
        }

        return response;
    }

    /// <summary>Records the first attempt's answer time in the adaptive delay's estimate, when it is an answer (not a retryable failure).</summary>
    private static void RecordAnswer(HedgingPolicy policy, long start, HttpResponseMessage response)
    {
        if (policy.Latency is not null && OutcomeClassifier.RetryReason(response, null, out _) is null)
        {
            policy.RecordAnswer(start, policy.Time.GetTimestamp());
        }
    }

    /// <summary>Whether a hedge ended in its pick (no endpoint the call had not tried could take it): only the pick throws that.</summary>
    private bool IsNotSent(int index, Task done) =>
        index > 0 && _attempts[index].Endpoint is null && ExceptionOf(done) is NoHealthyEndpointException;

    /// <summary>Disposes what the try made: the copies and token sources of the attempts that ended; a hedge still in flight (cancelled) does it when it ends.</summary>
    private void Release()
    {
        for (var i = 0; i < _launched; i++)
        {
            var attempt = _attempts[i];
            if (!attempt.Done)
            {
                _ = DrainAsync(attempt);
                continue;
            }

            attempt.Cts.Dispose();
            if (i > 0)
            {
                HedgeRequest.Release(attempt.Request);
            }
        }
    }

    /// <summary>Waits for a cancelled hedge to end, then disposes its answer, its copy of the request and its token source.</summary>
    private static async Task DrainAsync(TryAttempt attempt)
    {
        try
        {
            using var response = await attempt.Task.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Its end, as it lost.
        }
        finally
        {
            HedgeRequest.Release(attempt.Request);
            attempt.Cts.Dispose();
        }
    }

    /// <summary>Counts the try's hedges (<c>mesh.client.hedges</c>, by winner) and notes them on the call's span.</summary>
    private void Report(int winner)
    {
        var telemetry = _policy.Telemetry;
        if (telemetry.Hedges.Enabled)
        {
            telemetry.Hedges.Add(_hedges, _policy.ServiceTag, new KeyValuePair<string, object?>(MeshTags.HedgeWinner, winner < 0 ? "none" : winner == 0 ? "first" : "hedge"));
        }

        var activity = Activity.Current;
        if (activity is { IsAllDataRequested: true } && ReferenceEquals(activity.Source, MeshInstrumentation.Source))
        {
            activity.SetTag(MeshTags.Hedges, (activity.GetTagItem(MeshTags.Hedges) as int? ?? 0) + _hedges);
            if (winner >= 0)
            {
                activity.SetTag(MeshTags.HedgeWinner, winner);
            }
        }
    }

    private int IndexOf(Task task)
    {
        for (var i = 0; i < _launched; i++)
        {
            if (ReferenceEquals(_attempts[i].Task, task))
            {
                return i;
            }
        }

        throw new InvalidOperationException("An attempt this try did not start.");
    }

    /// <summary>The exception of a completed attempt that did not succeed (reading it observes it).</summary>
    private static Exception ExceptionOf(Task task) =>
        task.Exception?.InnerException
        ?? (task.IsCanceled ? new TaskCanceledException(task) : new InvalidOperationException("The attempt did not fail."));

    /// <summary>One attempt of the try: its task, its request (the caller's, or a copy), its token source and endpoint.</summary>
    private struct TryAttempt(Task<HttpResponseMessage> task, HttpRequestMessage request, CancellationTokenSource cts, EndpointEntry? endpoint)
    {
        public readonly Task<HttpResponseMessage> Task = task;
        public readonly HttpRequestMessage Request = request;
        public readonly CancellationTokenSource Cts = cts;
        public readonly EndpointEntry? Endpoint = endpoint;
        public bool Done;
    }
}
