using System.Globalization;

namespace MeshClient;

/// <summary>
/// The deadline of the work in progress, ambient (carried by an <see cref="AsyncLocal{T}"/>, like
/// <c>Activity.Current</c>): while one is current, every mesh call gets at most the time left as its total timeout, sends
/// that time on (<c>grpc-timeout</c> for gRPC, <see cref="HeaderName"/> for HTTP), and fails at once, without sending,
/// when none is left. ASP.NET Core's <c>app.UseMeshDeadlines()</c> (MeshClient.AspNetCore) makes an incoming request's
/// deadline current for its handling; a background job sets one with <see cref="Begin"/>.
/// </summary>
/// <remarks>
/// A deadline is a fixed point in time on a <see cref="System.TimeProvider"/>'s clock: the time it started plus its
/// timeout. A scope begun inside another cannot outlast it: the earlier deadline stays current.
/// </remarks>
public sealed class MeshDeadline
{
    /// <summary>
    /// The request header that carries a deadline between services over HTTP: <c>mesh-timeout</c>, in the format of gRPC's
    /// <c>grpc-timeout</c> (1 to 8 digits and a unit, <c>H</c>, <c>M</c>, <c>S</c>, <c>m</c>, <c>u</c> or <c>n</c>:
    /// <c>250m</c> is 250 ms), so that one parser serves both headers and a value passes from one to the other unchanged.
    /// </summary>
    public const string HeaderName = "mesh-timeout";

    /// <summary>The largest amount a timeout header may carry: 8 digits (gRPC over HTTP/2, <c>TimeoutValue</c>).</summary>
    private const long MaxAmount = 99_999_999;

    private static readonly AsyncLocal<MeshDeadline?> s_current = new();

    private readonly TimeProvider _time;
    private readonly long _start;
    private readonly TimeSpan _timeout;

    private MeshDeadline(TimeProvider time, long start, TimeSpan timeout)
    {
        _time = time;
        _start = start;
        _timeout = timeout;
    }

    /// <summary>
    /// Gets the deadline of the work in progress on this asynchronous flow, or <see langword="null"/> when there is none
    /// (a call then has only its own and its service's timeouts). Reading it allocates nothing.
    /// </summary>
    public static MeshDeadline? Current => s_current.Value;

    /// <summary>Gets the time left before the deadline, never below zero.</summary>
    public TimeSpan Remaining
    {
        get
        {
            var remaining = _timeout - _time.GetElapsedTime(_start);
            return remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero;
        }
    }

    /// <summary>Gets a value indicating whether the deadline has passed (no time is left).</summary>
    public bool HasPassed => _time.GetElapsedTime(_start) >= _timeout;

    /// <summary>
    /// Makes a deadline <paramref name="timeout"/> from now current until the returned scope is disposed (which restores
    /// the deadline that was current before). When a deadline is already current and ends earlier, it stays current: a
    /// nested scope can shorten the time left, never lengthen it.
    /// </summary>
    /// <param name="timeout">The time the work has, from now; <see cref="TimeSpan.Zero"/> is a deadline already passed.</param>
    /// <param name="timeProvider">The clock of the deadline; <see cref="TimeProvider.System"/> when <see langword="null"/>.
    /// Use the one the mesh uses (the application's <see cref="System.TimeProvider"/> service).</param>
    /// <returns>The scope: dispose it when the work ends (a <see langword="using"/>).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative.</exception>
    public static IDisposable Begin(TimeSpan timeout, TimeProvider? timeProvider = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero);
        var time = timeProvider ?? TimeProvider.System;
        var previous = s_current.Value;
        var current = previous is not null && previous.Remaining <= timeout ? previous : new MeshDeadline(time, time.GetTimestamp(), timeout);
        s_current.Value = current;
        return new Scope(previous);
    }

    /// <summary>
    /// Parses a timeout in the format of gRPC's <c>grpc-timeout</c> header (and of <see cref="HeaderName"/>): 1 to 8 ASCII
    /// digits followed by one unit, <c>H</c> (hours), <c>M</c> (minutes), <c>S</c> (seconds), <c>m</c> (milliseconds),
    /// <c>u</c> (microseconds) or <c>n</c> (nanoseconds, truncated to the 100 ns of a <see cref="TimeSpan"/> tick). No sign,
    /// no space, no decimal point. A zero amount is accepted: a deadline already passed.
    /// </summary>
    /// <param name="value">The header value.</param>
    /// <param name="timeout">The timeout, or <see cref="TimeSpan.Zero"/> when the value is malformed.</param>
    /// <returns>Whether <paramref name="value"/> is a well-formed timeout.</returns>
    public static bool TryParseTimeout(ReadOnlySpan<char> value, out TimeSpan timeout)
    {
        timeout = TimeSpan.Zero;
        if (value.Length is < 2 or > 9)
        {
            return false;
        }

        // Digits checked here, not by long.TryParse: it would also take a culture's other digits and white space.
        long amount = 0;
        foreach (var c in value[..^1])
        {
            if (c is < '0' or > '9')
            {
                return false;
            }

            amount = (amount * 10) + (c - '0');
        }

        // At most 99,999,999 of any unit: 99,999,999 hours (11,400 years) is well within TimeSpan's range.
        long? ticks = value[^1] switch
        {
            'H' => amount * TimeSpan.TicksPerHour,
            'M' => amount * TimeSpan.TicksPerMinute,
            'S' => amount * TimeSpan.TicksPerSecond,
            'm' => amount * TimeSpan.TicksPerMillisecond,
            'u' => amount * TimeSpan.TicksPerMicrosecond,
            'n' => amount / TimeSpan.NanosecondsPerTick,
            _ => null,
        };
        if (ticks is not { } t)
        {
            return false;
        }

        timeout = TimeSpan.FromTicks(t);
        return true;
    }

    /// <summary>
    /// Formats a timeout for <c>grpc-timeout</c> or <see cref="HeaderName"/>: in milliseconds (<c>1500m</c>), rounded
    /// down so that the receiver never gets more time than is left; below a millisecond in nanoseconds; in seconds,
    /// minutes or hours when it does not fit in 8 digits (capped at <c>99999999H</c>). A timeout of zero or less is
    /// <c>1n</c>, the smallest gRPC allows (Grpc.AspNetCore takes <c>0</c> for "no deadline").
    /// </summary>
    /// <param name="timeout">The time left.</param>
    /// <returns>The header value.</returns>
    public static string FormatTimeout(TimeSpan timeout)
    {
        var ticks = timeout.Ticks;
        if (ticks <= 0)
        {
            return "1n";
        }

        if (ticks < TimeSpan.TicksPerMillisecond)
        {
            return Format(ticks * TimeSpan.NanosecondsPerTick, 'n');
        }

        foreach (var (unit, ticksPerUnit) in Units)
        {
            if (ticks / ticksPerUnit <= MaxAmount)
            {
                return Format(ticks / ticksPerUnit, unit);
            }
        }

        return Format(MaxAmount, 'H');
    }

    private static readonly (char Unit, long Ticks)[] Units =
    [
        ('m', TimeSpan.TicksPerMillisecond),
        ('S', TimeSpan.TicksPerSecond),
        ('M', TimeSpan.TicksPerMinute),
        ('H', TimeSpan.TicksPerHour),
    ];

    private static string Format(long amount, char unit) => string.Create(CultureInfo.InvariantCulture, $"{amount}{unit}");

    /// <summary>Restores the deadline that was current when its scope began.</summary>
    private sealed class Scope(MeshDeadline? previous) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (!_disposed)
            {
                _disposed = true;
                s_current.Value = previous;
            }
        }
    }
}
