using System.Globalization;
using MeshClient.Model;

namespace MeshClient.Consul;

/// <summary>
/// The rules of Consul blocking queries and of retrying (reference/consul-http-api.md §2, §6.3), kept pure so that
/// they are unit-tested on their own.
/// </summary>
internal static class ConsulBlockingRules
{
    /// <summary>The network slack allowed on top of <c>wait + wait / 16</c>.</summary>
    internal static readonly TimeSpan ClientTimeoutMargin = TimeSpan.FromSeconds(10);

    /// <summary>Consul's cap on <c>?wait=</c> (<c>max_query_time</c>).</summary>
    internal static readonly TimeSpan MaxWait = TimeSpan.FromMinutes(10);

    /// <summary>
    /// The index to send with the next query after a response carrying <paramref name="returned"/>. First the sanity
    /// check (§2.1 "Sanity check index is greater than zero": a 0 is a Consul bug, and it is always safe to wait on
    /// 1), then: an index that went backwards resets to 0, restarting the loop with a non-blocking query (§2.1 "Reset
    /// the index if it goes backwards"); otherwise the returned index.
    /// </summary>
    public static ulong NextIndex(ulong previous, ulong returned)
    {
        var sane = Math.Max(returned, 1);
        return sane < previous ? 0 : sane;
    }

    /// <summary>
    /// The client-side timeout of a blocking query: Consul may hold it for <c>wait</c> plus up to <c>wait / 16</c>
    /// of jitter, so the client waits longer than that, with a margin for the network.
    /// </summary>
    public static TimeSpan ClientTimeout(TimeSpan wait)
    {
        var effective = wait > MaxWait ? MaxWait : wait;
        return effective + (effective / 16) + ClientTimeoutMargin;
    }

    /// <summary>Formats <paramref name="wait"/> as a Go duration in milliseconds (<c>300000ms</c>), as the Go client does.</summary>
    public static string FormatWait(TimeSpan wait)
    {
        // A positive sub-millisecond wait rounds up to 1ms: Consul reads "0ms" as "use the default".
        var ms = Math.Max(1L, (long)Math.Ceiling(wait.TotalMilliseconds));
        return ms.ToString(CultureInfo.InvariantCulture) + "ms";
    }

    /// <summary>
    /// The delay before the retry after <paramref name="failures"/> consecutive failures (1 for the first):
    /// <c>baseDelay × 2^(failures-1)</c> capped at <paramref name="maxDelay"/>, then "equal jitter": a uniformly drawn
    /// value between half of it and all of it, so that many clients do not retry in step.
    /// </summary>
    public static TimeSpan RetryDelay(int failures, TimeSpan baseDelay, TimeSpan maxDelay, Randomizer random)
    {
        if (failures < 1)
        {
            return TimeSpan.Zero;
        }

        var exponent = Math.Min(failures - 1, 30);
        var ticks = Math.Min((double)maxDelay.Ticks, baseDelay.Ticks * Math.Pow(2, exponent));
        var jittered = (ticks / 2) + (random.NextDouble() * ticks / 2);
        return TimeSpan.FromTicks((long)jittered);
    }
}
