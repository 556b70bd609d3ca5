using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace MeshClient.LoadTest;

/// <summary>
/// The servers of one scenario: a fresh backends child (and sidecars), set up for the scenario's fault, and for
/// churn the loop that replaces instances. Everything is restarted for every scenario, so no state (connection
/// pools, sidecar health, JIT-warm but faulty endpoints) leaks from one scenario into the next.
/// </summary>
public sealed class ScenarioEnvironment : IAsyncDisposable
{
    private readonly LoadTestOptions _options;
    private readonly TextWriter _log;
    private readonly List<Instance> _instances = [];
    private readonly Lock _gate = new();
    private Socket? _closedPort;
    private IReadOnlyList<Uri> _published = [];

    private ScenarioEnvironment(string name, LoadTestOptions options, ChildProcess backends, TextWriter log)
    {
        Name = name;
        _options = options;
        Backends = backends;
        _log = log;
    }

    public string Name { get; }

    public ChildProcess Backends { get; }

    internal YarpSidecar? Yarp { get; private set; }

    internal NginxSidecar? Nginx { get; private set; }

    /// <summary>Gets the backend id of the faulty instance (slow, failing), if the scenario has one that answers.</summary>
    public int? FaultyBackendId { get; private set; }

    /// <summary>Gets the ids of the first backends, in endpoint order (#1, #2, ...).</summary>
    public IReadOnlyList<int> InitialBackendIds { get; private set; } = [];

    /// <summary>Gets the endpoints discovery currently publishes.</summary>
    public IReadOnlyList<Uri> Endpoints
    {
        get
        {
            lock (_gate)
            {
                return _published;
            }
        }
    }

    /// <summary>Gets or sets the contender running now: churn tells it of every new endpoint set.</summary>
    public IContender? Subscriber { get; set; }

    public int ChurnEvents { get; private set; }

    public string Description => Describe(Name, _options);

    public static string Describe(string scenario, LoadTestOptions options) => scenario switch
    {
        Scenario.Healthy => $"{options.Backends} backends, 0 ms, 200",
        Scenario.Slow => $"backend #{options.Backends} +{options.SlowDelay.TotalMilliseconds:0} ms (Task.Delay), the others 0 ms",
        Scenario.Failing => $"backend #{options.Backends} answers 503 (same 1 KB body), the others 200",
        Scenario.Refused => $"endpoint #{options.Backends} is a closed port (bound, not listening: connection refused), the others 200",
        Scenario.Churn => $"{options.Backends} backends; every {options.ChurnPeriod.TotalSeconds:0.##} s the oldest stops (its port then refuses) and a new one starts on a new port; discovery learns of both {options.ChurnLag.TotalMilliseconds:0} ms later",
        _ => scenario,
    };

    public static async Task<ScenarioEnvironment> StartAsync(
        string name, LoadTestOptions options, bool yarp, string? nginxBinary, TextWriter log, CancellationToken cancellationToken)
    {
        var backends = ChildProcess.StartSelf("backends", ["--role", "backends"], log);
        var environment = new ScenarioEnvironment(name, options, backends, log);
        try
        {
            var ready = await backends.ReadLineAsync(TimeSpan.FromSeconds(30), cancellationToken);
            if (ready != "ready")
            {
                throw new InvalidOperationException($"backends: unexpected first line '{ready}'.");
            }

            await environment.SetUpAsync(cancellationToken);
            if (yarp)
            {
                environment.Yarp = await YarpSidecar.StartAsync(environment.Endpoints, log, cancellationToken);
            }

            if (nginxBinary is not null)
            {
                environment.Nginx = await NginxSidecar.StartAsync(nginxBinary, environment.Endpoints, log, cancellationToken);
            }

            return environment;
        }
        catch
        {
            await environment.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// JIT warm-up of the fresh server processes, not counted: traffic from 16 workers straight to the backends,
    /// then through each sidecar.
    /// </summary>
    public async Task WarmUpProcessesAsync(CancellationToken cancellationToken)
    {
        if (_options.ProcessWarmup <= TimeSpan.Zero)
        {
            return;
        }

        Uri[] direct;
        lock (_gate)
        {
            direct = [.. _instances.Where(i => i.Id != 0).Select(i => i.Uri)];
        }

        var targets = new List<Uri[]> { direct };
        if (Yarp is not null)
        {
            targets.Add([Yarp.Address]);
        }

        if (Nginx is not null)
        {
            targets.Add([Nginx.Address]);
        }

        foreach (var target in targets)
        {
            using var client = new HttpClient(new SocketsHttpHandler()) { Timeout = TimeSpan.FromSeconds(10) };
            var end = DateTime.UtcNow + _options.ProcessWarmup;
            var next = 0;
            var workers = Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
            {
                while (DateTime.UtcNow < end && !cancellationToken.IsCancellationRequested)
                {
                    var uri = new Uri(target[Interlocked.Increment(ref next) % target.Length], Contenders.Path);
                    await LoadGenerator.SendAsync(client, uri, cancellationToken);
                }
            }, CancellationToken.None));
            await Task.WhenAll(workers);
        }
    }

    /// <summary>Gets the number of requests each live backend has received so far, by backend id.</summary>
    public async Task<Dictionary<int, long>> CountsAsync()
    {
        var answer = await Backends.CommandAsync("counts");
        var counts = new Dictionary<int, long>();
        foreach (var item in answer.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1))
        {
            var pair = item.Split(':');
            counts[int.Parse(pair[0], CultureInfo.InvariantCulture)] = long.Parse(pair[1], CultureInfo.InvariantCulture);
        }

        return counts;
    }

    /// <summary>
    /// Churn until cancelled: every period, a new instance starts and the oldest stops (its port now refuses
    /// connections); <see cref="LoadTestOptions.ChurnLag"/> later, discovery publishes the new set. A cancellation
    /// never leaves a stopped instance published.
    /// </summary>
    public async Task RunChurnAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(_options.ChurnPeriod - _options.ChurnLag, cancellationToken);
                Instance victim;
                lock (_gate)
                {
                    victim = _instances[0];
                }

                var fresh = await StartBackendAsync(0, 200);
                await Backends.CommandAsync(string.Create(CultureInfo.InvariantCulture, $"stop {victim.Id}"));
                await Task.Delay(_options.ChurnLag, CancellationToken.None);
                lock (_gate)
                {
                    _instances.Remove(victim);
                    _instances.Add(fresh);
                }

                await PublishAsync();
                ChurnEvents++;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Nginx is not null)
        {
            await Nginx.DisposeAsync();
        }

        if (Yarp is not null)
        {
            await Yarp.DisposeAsync();
        }

        await Backends.DisposeAsync();
        _closedPort?.Dispose();
    }

    private async Task SetUpAsync(CancellationToken cancellationToken)
    {
        var count = _options.Backends;
        var slowMs = (int)_options.SlowDelay.TotalMilliseconds;
        for (var i = 0; i < count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var last = i == count - 1;
            if (last && Name == Scenario.Refused)
            {
                // Bound but not listening: the kernel answers a SYN with RST (connection refused), and holding the
                // socket keeps anyone else from taking the port during the run.
                _closedPort = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                _closedPort.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                var port = ((IPEndPoint)_closedPort.LocalEndPoint!).Port;
                _instances.Add(new Instance(0, new Uri($"http://127.0.0.1:{port}")));
                continue;
            }

            var delay = last && Name == Scenario.Slow ? slowMs : 0;
            var status = last && Name == Scenario.Failing ? 503 : 200;
            var instance = await StartBackendAsync(delay, status);
            _instances.Add(instance);
            if (last && Name is Scenario.Slow or Scenario.Failing)
            {
                FaultyBackendId = instance.Id;
            }
        }

        InitialBackendIds = [.. _instances.Select(i => i.Id)];
        await PublishAsync();
    }

    private async Task<Instance> StartBackendAsync(int delayMs, int status)
    {
        var answer = await Backends.CommandAsync(string.Create(CultureInfo.InvariantCulture, $"start {delayMs} {status}"));
        var parts = answer.Split(' ');
        return new Instance(int.Parse(parts[1], CultureInfo.InvariantCulture), new Uri($"http://127.0.0.1:{parts[2]}"));
    }

    private async Task PublishAsync()
    {
        IReadOnlyList<Uri> set;
        lock (_gate)
        {
            set = [.. _instances.Select(i => i.Uri)];
            _published = set;
        }

        if (Subscriber is { } subscriber)
        {
            try
            {
                await subscriber.UpdateEndpointsAsync(set);
            }
            catch (Exception e) when (e is InvalidOperationException or TimeoutException or IOException)
            {
                lock (_log)
                {
                    _log.WriteLine($"  churn: could not update {subscriber.Name}: {e.Message}");
                }
            }
        }
    }

    private sealed record Instance(int Id, Uri Uri);
}
