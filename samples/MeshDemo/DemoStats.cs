using System.Diagnostics;
using System.Diagnostics.Metrics;
using MeshClient.Telemetry;

namespace MeshDemo;

/// <summary>
/// What the demo measures itself: logical calls (as the application sees them), attempts per endpoint (as the
/// socket sees them, timed client-side), and the mesh's own retry and ejection counters, read from the
/// <c>MeshClient</c> meter.
/// </summary>
internal sealed class DemoStats : IDisposable
{
    private readonly Stopwatch _clock;
    private readonly Dictionary<int, EndpointStats> _byPort;
    private readonly MeterListener _listener = new();
    private long _requests;
    private long _succeeded;
    private long _failed;
    private long _retries;
    private long _ejections;

    public DemoStats(Stopwatch clock, IEnumerable<Backend> backends)
    {
        _clock = clock;
        _byPort = backends.ToDictionary(b => b.Port, b => new EndpointStats(b));

        // The mesh counts its retries and ejections on the "MeshClient" meter; any MeterListener can read them,
        // exactly as OpenTelemetry or dotnet-counters would.
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == MeshTelemetry.MeterName && instrument.Name is "mesh.client.retries" or "mesh.client.endpoint.ejections")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            if (instrument.Name == "mesh.client.retries")
            {
                Interlocked.Add(ref _retries, value);
                return;
            }

            Interlocked.Add(ref _ejections, value);
        });
        _listener.Start();
    }

    public long Requests => Interlocked.Read(ref _requests);

    public long Succeeded => Interlocked.Read(ref _succeeded);

    public long Failed => Interlocked.Read(ref _failed);

    public long Retries => Interlocked.Read(ref _retries);

    public long Ejections => Interlocked.Read(ref _ejections);

    public IEnumerable<EndpointStats> Endpoints => _byPort.Values;

    public EndpointStats? ForPort(int port) => _byPort.GetValueOrDefault(port);

    public void RecordCall(bool success)
    {
        if (!_clock.IsRunning)
        {
            return; // warm-up
        }

        Interlocked.Increment(ref _requests);
        Interlocked.Increment(ref success ? ref _succeeded : ref _failed);
    }

    public void RecordAttempt(int port, TimeSpan latency, bool success)
    {
        if (_clock.IsRunning)
        {
            ForPort(port)?.Record(_clock.Elapsed, latency, success);
        }
    }

    public void Dispose() => _listener.Dispose();
}

/// <summary>The attempts one endpoint received, with their client-side latency.</summary>
internal sealed class EndpointStats(Backend backend)
{
    private readonly Lock _lock = new();
    private readonly List<(TimeSpan At, double Milliseconds)> _samples = [];
    private long _errors;

    public Backend Backend { get; } = backend;

    public long Errors => Interlocked.Read(ref _errors);

    public void Record(TimeSpan at, TimeSpan latency, bool success)
    {
        if (!success)
        {
            Interlocked.Increment(ref _errors);
        }

        lock (_lock)
        {
            _samples.Add((at, latency.TotalMilliseconds));
        }
    }

    /// <summary>Returns the attempts since <paramref name="since"/> and their 50th and 99th latency percentiles.</summary>
    public (int Count, double? P50, double? P99) Window(TimeSpan since)
    {
        List<double> latencies;
        lock (_lock)
        {
            // Samples are appended in time order, so the window is a suffix: find its start by bisection.
            int low = 0, high = _samples.Count;
            while (low < high)
            {
                var mid = (low + high) / 2;
                if (_samples[mid].At < since)
                {
                    low = mid + 1;
                }
                else
                {
                    high = mid;
                }
            }

            latencies = _samples.GetRange(low, _samples.Count - low).ConvertAll(s => s.Milliseconds);
        }

        if (latencies.Count == 0)
        {
            return (0, null, null);
        }

        latencies.Sort();
        return (latencies.Count, Percentile(latencies, 0.50), Percentile(latencies, 0.99));
    }

    private static double Percentile(List<double> sorted, double p) =>
        sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
}

/// <summary>
/// Times every attempt the mesh sends, per endpoint. The demo installs it as the client's primary handler,
/// below the mesh handlers, so it sees each attempt after the mesh has picked an endpoint and rewritten the URI.
/// An application does not need it: the mesh's own metrics and spans report the same, keyed by service.
/// </summary>
internal sealed class AttemptRecorder(DemoStats stats) : DelegatingHandler(new SocketsHttpHandler())
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var port = request.RequestUri?.Port ?? 0;
        var start = Stopwatch.GetTimestamp();
        try
        {
            var response = await base.SendAsync(request, cancellationToken);
            stats.RecordAttempt(port, Stopwatch.GetElapsedTime(start), (int)response.StatusCode < 500);
            return response;
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            stats.RecordAttempt(port, Stopwatch.GetElapsedTime(start), success: false);
            throw;
        }
    }
}
