using System.Diagnostics;
using System.Globalization;
using System.Net.Http;

namespace MeshClient.LoadTest;

/// <summary>What one shape produced: every request's latency, and how many completed inside the measured window.</summary>
public sealed record ShapeResult(LatencyRecorder Latency, LatencyRecorder? SenderLag, long CompletedInWindow, TimeSpan Window, TimeSpan Elapsed);

/// <summary>The two ways of sending (each request takes its client from <c>client()</c>: one client, or the next in turn): an open model at a fixed rate, and a closed model at fixed concurrency.</summary>
public static class LoadGenerator
{
    private static readonly string[] StatusTexts = Enumerable.Range(0, 600).Select(code => "HTTP " + code.ToString(CultureInfo.InvariantCulture)).ToArray();

    /// <summary>
    /// Open model: request i is due at start + i / rate, whatever happened to the others, and its latency runs from
    /// that intended time (no coordinated omission: a stall shows in every request it delayed). A dedicated thread
    /// paces the sends; at most <paramref name="maxInFlight"/> run at once (the sender waits when full; the wait
    /// counts in the latency). A send not made by the end of the window + <paramref name="grace"/> fails as "unsent".
    /// Requests still running <paramref name="drainCap"/> after that are cancelled and count as failed.
    /// </summary>
    public static async Task<ShapeResult> RunRateAsync(
        Func<HttpClient> client, Uri uri, int rate, TimeSpan duration, int maxInFlight, TimeSpan grace, TimeSpan drainCap, CancellationToken cancellationToken)
    {
        var total = Math.Max(1, (long)Math.Round(rate * duration.TotalSeconds));
        var latency = new LatencyRecorder(total);
        var lag = new LatencyRecorder(total);
        var slots = new SemaphoreSlim(maxInFlight, maxInFlight);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        long outstanding = 1;
        long inWindow = 0;
        var frequency = Stopwatch.Frequency;
        var start = Stopwatch.GetTimestamp() + (frequency / 100);
        var windowEnd = start + (long)(duration.TotalSeconds * frequency);
        var sendDeadline = windowEnd + (long)(grace.TotalSeconds * frequency);
        var interval = (double)frequency / rate;

        void Finish()
        {
            if (Interlocked.Decrement(ref outstanding) == 0)
            {
                done.TrySetResult();
            }
        }

        async Task OneAsync(long intended)
        {
            var (ok, error) = await SendAsync(client(), uri, cancel.Token);
            var now = Stopwatch.GetTimestamp();
            latency.Record(now - intended, ok, error);
            if (now <= windowEnd)
            {
                Interlocked.Increment(ref inWindow);
            }

            slots.Release();
            Finish();
        }

        void Unsent(long from)
        {
            for (var i = from; i < total; i++)
            {
                var intended = start + (long)(i * interval);
                latency.Record(Math.Max(0, sendDeadline - intended), success: false, "unsent");
            }
        }

        var sender = new Thread(() =>
        {
            try
            {
                Pacer.PrepareThread();
                for (long i = 0; i < total; i++)
                {
                    var intended = start + (long)(i * interval);
                    Pacer.SleepUntil(intended);
                    if (cancel.IsCancellationRequested)
                    {
                        Unsent(i);
                        break;
                    }

                    if (!slots.Wait(0))
                    {
                        var wait = TimeSpan.FromSeconds((double)(sendDeadline - Stopwatch.GetTimestamp()) / frequency);
                        if (wait <= TimeSpan.Zero || !slots.Wait(wait, cancel.Token))
                        {
                            Unsent(i);
                            break;
                        }
                    }

                    var sent = Stopwatch.GetTimestamp();
                    if (sent > sendDeadline)
                    {
                        slots.Release();
                        Unsent(i);
                        break;
                    }

                    lag.Record(sent - intended, success: true);
                    Interlocked.Increment(ref outstanding);
                    _ = OneAsync(intended);
                }
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C: what was not sent is simply not counted.
            }
            finally
            {
                Finish();
            }
        })
        {
            IsBackground = true,
            Name = "loadtest-sender",
        };

        sender.Start();
        cancel.CancelAfter(duration + grace + drainCap);
        await WaitBoundedAsync(done.Task, duration + grace + drainCap + TimeSpan.FromSeconds(10));
        var elapsed = Stopwatch.GetElapsedTime(start);
        return new ShapeResult(latency, lag, Interlocked.Read(ref inWindow), duration, elapsed);
    }

    /// <summary>
    /// Closed model: <paramref name="concurrency"/> workers each send, await the whole response, and send again,
    /// until the window ends; what is still running then finishes (up to <paramref name="drainCap"/>) and is counted.
    /// Throughput = completions inside the window ÷ window.
    /// </summary>
    public static async Task<ShapeResult> RunSaturationAsync(
        Func<HttpClient> client, Uri uri, int concurrency, TimeSpan duration, TimeSpan drainCap, long expected, CancellationToken cancellationToken)
    {
        var latency = new LatencyRecorder(expected);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        long inWindow = 0;
        var start = Stopwatch.GetTimestamp();
        var end = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);

        async Task WorkerAsync()
        {
            await Task.Yield();
            while (!cancel.IsCancellationRequested)
            {
                var sent = Stopwatch.GetTimestamp();
                if (sent >= end)
                {
                    return;
                }

                var (ok, error) = await SendAsync(client(), uri, cancel.Token);
                var now = Stopwatch.GetTimestamp();
                latency.Record(now - sent, ok, error);
                if (now <= end)
                {
                    Interlocked.Increment(ref inWindow);
                }
            }
        }

        cancel.CancelAfter(duration + drainCap);
        var workers = new Task[concurrency];
        for (var i = 0; i < workers.Length; i++)
        {
            workers[i] = Task.Run(WorkerAsync, CancellationToken.None);
        }

        await WaitBoundedAsync(Task.WhenAll(workers), duration + drainCap + TimeSpan.FromSeconds(10));
        return new ShapeResult(latency, null, Interlocked.Read(ref inWindow), duration, Stopwatch.GetElapsedTime(start));
    }

    /// <summary>Sends one GET and reads the whole body; any exception is a failure, named for the report.</summary>
    public static async Task<(bool Ok, string? Error)> SendAsync(HttpClient client, Uri uri, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await client.GetAsync(uri, HttpCompletionOption.ResponseContentRead, cancellationToken);
            var status = (int)response.StatusCode;
            return response.IsSuccessStatusCode ? (true, null) : (false, status is >= 0 and < 600 ? StatusTexts[status] : "HTTP " + status);
        }
        catch (Exception e)
        {
            return (false, Describe(e));
        }
    }

    public static string Describe(Exception e) => e switch
    {
        HttpRequestException { HttpRequestError: not HttpRequestError.Unknown } h => $"{nameof(HttpRequestException)}({h.HttpRequestError})",
        TaskCanceledException { InnerException: TimeoutException } => "Timeout (HttpClient.Timeout)",
        OperationCanceledException => "Cancelled (drain cap)",
        _ => e.GetType().Name,
    };

    private static async Task WaitBoundedAsync(Task task, TimeSpan limit)
    {
        try
        {
            await task.WaitAsync(limit);
        }
        catch (TimeoutException)
        {
            // A request ignored its cancellation: report what was recorded rather than hang.
        }
    }
}
