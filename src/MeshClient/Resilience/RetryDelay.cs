using MeshClient.Model;

namespace MeshClient.Resilience;

/// <summary>
/// How long a call waits before a retry: not at all for a requeue; the <c>Retry-After</c> of the answer being retried
/// when it has one (a delay, or a date on the mesh's clock; a date passed is no wait); otherwise an exponential backoff
/// with equal jitter (<c>RetryBaseDelay</c> × 2^n, the upper half of it drawn at random). Never longer than
/// <c>RetryMaxDelay</c>: a long <c>Retry-After</c> keeps its endpoint out of the picks (<see cref="OutlierDetector"/>)
/// and the next attempt goes elsewhere instead of sleeping the call into its total timeout.
/// </summary>
internal static class RetryDelay
{
    /// <summary>Gets the wait before the retry just decided in <paramref name="state"/>.</summary>
    /// <param name="state">The call's retry state, with the retry decided.</param>
    /// <param name="response">The answer being retried, if there is one.</param>
    /// <param name="settings">The service's settings.</param>
    /// <param name="time">The mesh's clock (for a <c>Retry-After</c> date).</param>
    /// <param name="random">The jitter's source.</param>
    public static TimeSpan Next(in RetryState state, HttpResponseMessage? response, ResilienceSettings settings, TimeProvider time, Randomizer random)
    {
        if (state.RequeuePending)
        {
            return TimeSpan.Zero;
        }

        var max = settings.RetryMaxDelay;
        if (response?.Headers.RetryAfter is { } header && (header.Date is not null || header.Delta is not null))
        {
            var asked = header.Date is { } date ? date - time.GetUtcNow() : header.Delta!.Value;
            return asked < TimeSpan.Zero ? TimeSpan.Zero : asked > max ? max : asked;
        }

        return Backoff(state.Retries - 1, settings.RetryBaseDelay, max, random);
    }

    /// <summary>The backoff before retry number <paramref name="retry"/> + 1: base × 2^retry capped at max, then equal jitter.</summary>
    internal static TimeSpan Backoff(int retry, TimeSpan baseDelay, TimeSpan maxDelay, Randomizer random)
    {
        var ticks = Math.Min((double)maxDelay.Ticks, baseDelay.Ticks * Math.Pow(2, Math.Clamp(retry, 0, 30)));
        return TimeSpan.FromTicks((long)((ticks / 2) + (random.NextDouble() * ticks / 2)));
    }
}
