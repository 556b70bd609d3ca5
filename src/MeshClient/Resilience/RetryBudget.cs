namespace MeshClient.Resilience;

/// <summary>
/// Linkerd's retry budget (tower <c>TpsBudget</c>): over a rolling window, retries may add at most
/// <c>percent</c> of the requests plus <c>minPerSecond</c> per second. Polly has no budget strategy, so it is
/// written here and consulted by the retry strategy's predicate.
/// </summary>
internal sealed class RetryBudget(TimeProvider time, int percent, int minPerSecond, TimeSpan window)
{
    // Marked = retries; total = requests and retries.
    private readonly RollingCounter _counter = new(time, window);
    private readonly double _reserve = minPerSecond * window.TotalSeconds;

    public void OnRequest() => _counter.Add(marked: false);

    /// <summary>Takes one retry from the budget, or returns <see langword="false"/> when it is spent.</summary>
    public bool TryWithdraw()
    {
        var (total, retries) = _counter.Sum();
        var requests = total - retries;
        if (retries >= (requests * percent / 100.0) + _reserve)
        {
            return false;
        }

        _counter.Add(marked: true);
        return true;
    }

    /// <summary>Gives back a retry taken with <see cref="TryWithdraw"/> that was never sent (the call was cancelled during its backoff).</summary>
    public void Refund() => _counter.Remove(marked: true);

    /// <summary>Gets the retries taken in the current window (tests).</summary>
    internal int Retries => _counter.Sum().Marked;
}
