using System.Diagnostics;

namespace MeshDemo;

/// <summary>
/// Sends <c>GET /work</c> at a steady rate for the run's duration (open loop: a slow endpoint does not slow the
/// sender), with at most <see cref="MaxInFlight"/> calls outstanding, then waits for the last calls to finish.
/// </summary>
internal static class Traffic
{
    public const int MaxInFlight = 128;

    public static async Task RunAsync(HttpClient client, DemoStats stats, DemoOptions options, Stopwatch clock, CancellationToken stop)
    {
        using var gate = new SemaphoreSlim(MaxInFlight, MaxInFlight);
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(10));
        long sent = 0;
        try
        {
            while (clock.Elapsed < options.Duration && await timer.WaitForNextTickAsync(stop))
            {
                var due = (long)(Math.Min(clock.Elapsed.TotalSeconds, options.Duration.TotalSeconds) * options.RequestsPerSecond);
                for (; sent < due; sent++)
                {
                    await gate.WaitAsync(stop);
                    _ = CallAsync(client, stats, gate);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Ctrl+C: stop sending; the calls in flight still finish below.
        }

        // Drain: every call holds the gate until it ends, and each ends within the mesh's total timeout.
        for (var i = 0; i < MaxInFlight; i++)
        {
            await gate.WaitAsync(TimeSpan.FromSeconds(35));
        }
    }

    private static async Task CallAsync(HttpClient client, DemoStats stats, SemaphoreSlim gate)
    {
        try
        {
            using var response = await client.GetAsync(new Uri("/work", UriKind.Relative));
            stats.RecordCall(response.IsSuccessStatusCode);
        }
        catch (Exception)
        {
            // Timeouts, no endpoint, connection errors after the retries: the application sees a failed call.
            stats.RecordCall(success: false);
        }
        finally
        {
            gate.Release();
        }
    }
}
