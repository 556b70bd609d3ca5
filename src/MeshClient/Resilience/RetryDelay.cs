using MeshClient.Model;

namespace MeshClient.Resilience;

/// <summary>
/// How long a call waits before a retry: not at all for a requeue, nor after an endpoint asked not to be called
/// (<c>Retry-After</c>, a gRPC pushback) while another endpoint can take the retry
/// (<see cref="MeshRequestContext.RetryElsewhereAtOnce"/>: the asking endpoint is out of the picks,
/// <see cref="OutlierDetector"/>, so its delay has nothing to wait for); the <c>Retry-After</c> of the answer being
/// retried when it has one (a delay, or a date on the mesh's clock; a date passed is no wait), which only matters when
/// the same endpoint would be tried again; otherwise an exponential backoff with equal jitter (<c>RetryBaseDelay</c> ×
/// 2^n, the upper half of it drawn at random). Never longer than <c>RetryMaxDelay</c>, instead of sleeping the call
/// into its total timeout.
/// </summary>
internal static class RetryDelay
{
    /// <summary>Gets the wait before the retry just decided in <paramref name="state"/>.</summary>
    /// <param name="state">The call's retry state, with the retry decided.</param>
    /// <param name="call">The call (whether its retry may go elsewhere at once).</param>
    /// <param name="response">The answer being retried, if there is one.</param>
    /// <param name="settings">The service's settings.</param>
    /// <param name="time">The mesh's clock (for a <c>Retry-After</c> date).</param>
    /// <param name="random">The jitter's source.</param>
    public static TimeSpan Next(in RetryState state, MeshRequestContext call, HttpResponseMessage? response, ResilienceSettings settings, TimeProvider time, Randomizer random)
    {
        if (state.RequeuePending || call.RetryElsewhereAtOnce)
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
