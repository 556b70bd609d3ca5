namespace MeshClient.Tests.Infrastructure;

/// <summary>Runs a bounded number of calls with bounded concurrency, with an overall time limit.</summary>
public static class Load
{
    public static async Task RunAsync(int total, int concurrency, Func<int, Task> call, TimeSpan? limit = null)
    {
        using var timeout = new CancellationTokenSource(limit ?? TimeSpan.FromSeconds(60));
        var next = -1;
        var workers = Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < total)
            {
                timeout.Token.ThrowIfCancellationRequested();
                await call(i);
            }
        });
        await Task.WhenAll(workers);
    }
}
