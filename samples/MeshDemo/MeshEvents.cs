using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshDemo;

/// <summary>One ejection, probe or readmission, as the mesh logged it.</summary>
internal sealed record MeshEvent(TimeSpan At, string Kind, string Endpoint, string? Reason);

/// <summary>
/// Counts what the mesh's outlier detection did, from its own log events (200 <c>EndpointEjected</c>, 201
/// <c>EndpointProbing</c>, 202 <c>EndpointReadmitted</c>): every one of them, where sampling <c>IMeshStatus</c> a few
/// times a second misses a probe that lasts a millisecond. The demo's summary is built from these counts, never from a
/// fixed sentence. Any logging provider sees the same events; this one only counts them.
/// </summary>
internal sealed class MeshEvents(Stopwatch clock) : ILoggerProvider, ILogger
{
    public const string Ejected = "ejected";
    public const string Probing = "probing";
    public const string Readmitted = "readmitted";

    private readonly Lock _lock = new();
    private readonly List<MeshEvent> _all = [];

    /// <summary>Gets the events not yet shown.</summary>
    public ConcurrentQueue<MeshEvent> Pending { get; } = new();

    /// <summary>Gets every event of the run, in order.</summary>
    public IReadOnlyList<MeshEvent> All
    {
        get
        {
            lock (_lock)
            {
                return [.. _all];
            }
        }
    }

    public int Count(string kind, string? endpoint = null) =>
        All.Count(e => e.Kind == kind && (endpoint is null || e.Endpoint == endpoint));

    public ILogger CreateLogger(string categoryName) =>
        categoryName.StartsWith("MeshClient", StringComparison.Ordinal) ? this : NullLogger.Instance;

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var kind = eventId.Id switch
        {
            200 => Ejected,
            201 => Probing,
            202 => Readmitted,
            _ => null,
        };
        if (kind is null || state is not IReadOnlyList<KeyValuePair<string, object?>> fields)
        {
            return;
        }

        string? Field(string name) => fields.FirstOrDefault(f => f.Key == name).Value is { } value ? Convert.ToString(value, CultureInfo.InvariantCulture) : null;
        var recorded = new MeshEvent(clock.Elapsed, kind, Field("Endpoint") ?? "?", Field("Reason"));
        lock (_lock)
        {
            _all.Add(recorded);
        }

        Pending.Enqueue(recorded);
    }

    public void Dispose()
    {
    }
}
