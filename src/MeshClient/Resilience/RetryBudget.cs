using MeshClient.Model;

namespace MeshClient.Resilience;

/// <summary>
/// Linkerd's retry budget (tower <c>TpsBudget</c>): over a rolling window, retries may add at most
/// <c>percent</c> of the requests plus <c>minPerSecond</c> per second. Polly has no budget strategy, so it is
/// written here and consulted by the retry predicate (<see cref="RetryPredicate"/>).
/// </summary>
internal sealed class RetryBudget(TimeProvider time, int percent, int minPerSecond, TimeSpan window)
{
    // Marked = retries; total = requests and retries.
    private readonly RollingCounter _counter = new(time, window);
    private readonly double _reserve = minPerSecond * window.TotalSeconds;

    // Serialises withdrawals only: the check and the add of one withdrawal must not interleave with another's, or
    // concurrent failures all see the last free retry and all take it (the budget was overdrawn by up to one retry per
    // concurrent caller). A lock rather than a CAS loop because the state checked is a sum over ten buckets, not one
    // word. It is off the hot path: a withdrawal happens only when an attempt failed, and requests (OnRequest) and
    // refunds never take it; they only raise the allowance, so racing them cannot overdraw it.
    private readonly Lock _withdrawLock = new();

    public int Percent { get; } = percent;

    public int MinPerSecond { get; } = minPerSecond;

    public TimeSpan Window => _counter.Window;

    public void OnRequest() => _counter.Add(marked: false);

    /// <summary>Takes one retry from the budget, or returns <see langword="false"/> when it is spent.</summary>
    public bool TryWithdraw()
    {
        lock (_withdrawLock)
        {
            var (total, retries) = _counter.Sum();
            var requests = total - retries;
            if (retries >= (requests * Percent / 100.0) + _reserve)
            {
                return false;
            }

            _counter.Add(marked: true);
            return true;
        }
    }

    /// <summary>Gives back a retry taken with <see cref="TryWithdraw"/> that was never sent (the call was cancelled during its backoff).</summary>
    public void Refund() => _counter.Remove(marked: true);

    /// <summary>Says whether this budget has the given settings, so that a reload that did not change them keeps it.</summary>
    public bool Matches(int percent, int minPerSecond, TimeSpan window) =>
        Percent == percent && MinPerSecond == minPerSecond && _counter.Matches(window);

    /// <summary>Gets the requests and the retries counted in the current window, and the retries they allow.</summary>
    public (int Requests, int Retries, double Allowed) Usage()
    {
        var (total, retries) = _counter.Sum();
        var requests = total - retries;
        return (requests, retries, (requests * Percent / 100.0) + _reserve);
    }

    /// <summary>Gets the retries taken in the current window (tests).</summary>
    internal int Retries => _counter.Sum().Marked;

    /// <summary>Gets the requests and retries counted in the current window (tests).</summary>
    internal int Total => _counter.Sum().Total;
}
