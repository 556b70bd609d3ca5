namespace MeshClient.Tests.Infrastructure;

/// <summary>Waits for a condition with a bounded number of checks; fails the test if it never holds.</summary>
public static class Poll
{
    public static Task UntilAsync(Func<bool> condition, TimeSpan? limit = null) =>
        UntilAsync(() => Task.FromResult(condition()), limit);

    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan? limit = null)
    {
        var deadline = TimeProvider.System.GetTimestamp() + (long)((limit ?? TimeSpan.FromSeconds(10)).TotalSeconds * TimeProvider.System.TimestampFrequency);
        while (!await condition())
        {
            if (TimeProvider.System.GetTimestamp() > deadline)
            {
                Assert.Fail("The condition did not hold in time.");
            }

            await Task.Delay(10);
        }
    }
}
