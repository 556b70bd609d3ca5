namespace MeshClient.Tests.Infrastructure;

/// <summary>Waits for a condition with bounded polling (never a fixed sleep standing in for "long enough").</summary>
internal static class Eventually
{
    public static async Task<TimeSpan> TrueAsync(Func<bool> condition, TimeSpan timeout, string because)
    {
        var started = TimeProvider.System.GetTimestamp();
        while (!condition())
        {
            if (TimeProvider.System.GetElapsedTime(started) > timeout)
            {
                Assert.Fail($"Not true within {timeout}: {because}");
            }

            await Task.Delay(10);
        }

        return TimeProvider.System.GetElapsedTime(started);
    }

    public static async Task<TimeSpan> TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, string because)
    {
        var started = TimeProvider.System.GetTimestamp();
        while (!await condition())
        {
            if (TimeProvider.System.GetElapsedTime(started) > timeout)
            {
                Assert.Fail($"Not true within {timeout}: {because}");
            }

            await Task.Delay(10);
        }

        return TimeProvider.System.GetElapsedTime(started);
    }
}
