using System.Collections.Concurrent;

namespace MeshClient.Tests.Infrastructure;

/// <summary>
/// A <see cref="TimeProvider"/> that delegates to another one (a <c>FakeTimeProvider</c> in tests) and keeps every
/// timer created and not yet disposed, by the type of its callback state: the mesh's own timers (service tables,
/// ejections, Consul idle timers) and those made for it (retry delays, <c>Task.Delay</c>, the calls' CTS timeouts).
/// </summary>
public sealed class CountingTimeProvider(TimeProvider inner) : TimeProvider
{
    private readonly ConcurrentDictionary<CountedTimer, string> _live = new();
    private readonly ConcurrentDictionary<string, int> _createdByKind = new();
    private long _created;

    public TimeProvider Inner { get; } = inner;

    /// <summary>Gets the number of timers created so far.</summary>
    public long Created => Interlocked.Read(ref _created);

    /// <summary>Gets the number of timers created and not disposed.</summary>
    public int Live => _live.Count;

    /// <summary>Gets the timers created and not disposed, by the type of their callback state.</summary>
    public IReadOnlyDictionary<string, int> LiveByKind() =>
        _live.Values.GroupBy(k => k).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count());

    public int LiveOf(string kind) => _live.Values.Count(k => k == kind);

    /// <summary>Gets the number of timers created so far whose callback state is of the given type.</summary>
    public int CreatedOf(string kind) => _createdByKind.TryGetValue(kind, out var count) ? count : 0;

    public override long GetTimestamp() => Inner.GetTimestamp();

    public override long TimestampFrequency => Inner.TimestampFrequency;

    public override DateTimeOffset GetUtcNow() => Inner.GetUtcNow();

    public override TimeZoneInfo LocalTimeZone => Inner.LocalTimeZone;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new CountedTimer(this);
        var kind = Describe(state);
        _live[timer] = kind;
        _createdByKind.AddOrUpdate(kind, 1, static (_, count) => count + 1);
        Interlocked.Increment(ref _created);
        timer.Inner = Inner.CreateTimer(callback, state, dueTime, period);
        return timer;
    }

    private static string Describe(object? state) => state switch
    {
        null => "(none)",
        Delegate callback => callback.Target?.GetType().Name ?? callback.Method.DeclaringType?.Name ?? "(delegate)", // a timer whose state is its owner's method
        System.Runtime.CompilerServices.ITuple tuple => "(" + string.Join(", ", Enumerable.Range(0, tuple.Length).Select(i => tuple[i]?.GetType().Name)) + ")",
        _ => state.GetType().Name,
    };

    private sealed class CountedTimer(CountingTimeProvider owner) : ITimer
    {
        public ITimer Inner { get; set; } = null!;

        public bool Change(TimeSpan dueTime, TimeSpan period) => Inner.Change(dueTime, period);

        public void Dispose()
        {
            owner._live.TryRemove(this, out _);
            Inner.Dispose();
        }

        public ValueTask DisposeAsync()
        {
            owner._live.TryRemove(this, out _);
            return Inner.DisposeAsync();
        }
    }
}
