using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Infrastructure;

public static class FakeTime
{
    /// <summary>A fake clock at a fixed, readable start (2026-11-24 00:00 UTC), for every timing rule.</summary>
    public static FakeTimeProvider Create() =>
        new(DateTimeOffset.Parse("2026-11-24T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>
    /// Advances fake time step by step, letting the code under test run between steps, until the condition holds.
    /// Returns how much fake time that took. Robust to timers that are registered a little after an event.
    /// </summary>
    public static async Task<TimeSpan> AdvanceUntilAsync(FakeTimeProvider time, Func<bool> condition, TimeSpan step, TimeSpan max)
    {
        var waited = TimeSpan.Zero;
        for (var i = 0; i < 20 && !condition(); i++)
        {
            await Task.Delay(5); // let pending work register its timers before time moves
        }

        while (!condition())
        {
            Assert.True(waited < max, $"The condition did not hold within {max} of fake time.");
            time.Advance(step);
            waited += step;
            for (var i = 0; i < 40 && !condition(); i++)
            {
                await Task.Delay(1);
            }
        }

        return waited;
    }
}
