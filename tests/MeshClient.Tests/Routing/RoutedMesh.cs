using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MeshClient.Routing;
using MeshClient.Status;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Routing;

/// <summary>
/// A caller whose service <c>catalog</c> has routes to two backend services, <c>catalog-v1</c> and <c>catalog-v2</c>,
/// each with its own real Kestrel backends on 127.0.0.1 (or closed ports), through a real IHttpClientFactory; every log
/// line is collected.
/// </summary>
internal sealed class RoutedMesh : IAsyncDisposable
{
    private RoutedMesh(Backends v1, Backends v2, MeshHost host, FakeLogCollector logs, Dictionary<string, string?> settings)
    {
        Settings = settings;
        V1 = v1;
        V2 = v2;
        Host = host;
        Logs = logs;
    }

    public Backends V1 { get; }

    public Backends V2 { get; }

    public MeshHost Host { get; }

    public FakeLogCollector Logs { get; }

    /// <summary>Gets the configuration the host started with (a test copies it to reload).</summary>
    public IReadOnlyDictionary<string, string?> Settings { get; }

    public HttpClient Client => Host.CreateClient();

    internal MeshRouter Router => Host.Services.GetRequiredService<MeshRouter>();

    /// <summary>Requests received by the v1 backends, and by the v2 ones.</summary>
    public (int V1, int V2) Counts => (V1.Sum(b => b.Count), V2.Sum(b => b.Count));

    /// <summary>The split's settings: <c>catalog</c> 90/10 (or as given) over v1 and v2, and each backend's endpoints.</summary>
    public static Dictionary<string, string?> Split(int v1Weight, int v2Weight, string name = "split") => new()
    {
        ["Mesh:Services:catalog:Routes:0:Name"] = name,
        ["Mesh:Services:catalog:Routes:0:Backends:0:Service"] = "catalog-v1",
        ["Mesh:Services:catalog:Routes:0:Backends:0:Weight"] = v1Weight.ToString(CultureInfo.InvariantCulture),
        ["Mesh:Services:catalog:Routes:0:Backends:1:Service"] = "catalog-v2",
        ["Mesh:Services:catalog:Routes:0:Backends:1:Weight"] = v2Weight.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>
    /// Starts <paramref name="v1"/> and <paramref name="v2"/> backends (or, for v2, <paramref name="v2Closed"/> closed ports)
    /// and a mesh host with <paramref name="settings"/> plus their endpoints.
    /// </summary>
    public static async Task<RoutedMesh> StartAsync(int v1, int v2, Dictionary<string, string?> settings, FakeTimeProvider? time = null, int v2Closed = 0)
    {
        var first = new Backends();
        var second = new Backends();
        for (var i = 0; i < v1; i++)
        {
            first.Add(await TestBackend.StartAsync("v1-" + i));
        }

        for (var i = 0; i < v2; i++)
        {
            second.Add(await TestBackend.StartAsync("v2-" + i));
        }

        var all = new Dictionary<string, string?>(settings, StringComparer.OrdinalIgnoreCase);
        AddEndpoints(all, "catalog-v1", first.Select(b => b.Address));
        AddEndpoints(all, "catalog-v2", [.. second.Select(b => b.Address), .. Enumerable.Range(0, v2Closed).Select(_ => ClosedPort())]);
        var logs = new FakeLogCollector();
        var host = MeshHost.Create(all, services =>
        {
            services.AddLogging(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(new FakeLoggerProvider(logs)));
            if (time is not null)
            {
                services.AddSingleton<TimeProvider>(time);
            }
        });
        return new RoutedMesh(first, second, host, logs, all);
    }

    private static void AddEndpoints(Dictionary<string, string?> settings, string service, IEnumerable<Uri> addresses)
    {
        var i = 0;
        foreach (var address in addresses)
        {
            settings[$"Mesh:Services:{service}:Endpoints:{i++}:Address"] = address.ToString();
        }
    }

    /// <summary>An address on 127.0.0.1 that refuses connections: a port the OS gave a listener that has closed.</summary>
    private static Uri ClosedPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return new Uri($"http://127.0.0.1:{port}/");
    }

    /// <summary>The route's backends as the status page shows them: service → (share, state).</summary>
    public IReadOnlyDictionary<string, MeshRouteBackendStatus> Shares(string route = "split") =>
        Host.Services.GetRequiredService<IMeshStatus>().GetServices()
            .Single(s => s.Name == "catalog").Routes.Single(r => r.Name == route).Backends
            .ToDictionary(b => b.Service);

    /// <summary>Log records of one event id.</summary>
    public IReadOnlyList<FakeLogRecord> Events(int eventId) => [.. Logs.GetSnapshot().Where(r => r.Id.Id == eventId)];

    /// <summary>Runs <paramref name="total"/> GETs with <paramref name="callers"/> concurrent callers; returns the failed ones (an exception or a status of 400 and above).</summary>
    public async Task<int> RunAsync(int total, int callers, Action<HttpRequestMessage, int>? prepare = null)
    {
        var client = Client;
        var failed = 0;
        await Load.RunAsync(total, callers, async i =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "http://catalog/items/" + i.ToString(CultureInfo.InvariantCulture));
            prepare?.Invoke(request, i);
            try
            {
                using var response = await client.SendAsync(request);
                if ((int)response.StatusCode >= 400)
                {
                    Interlocked.Increment(ref failed);
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or MeshException or OperationCanceledException or Polly.Timeout.TimeoutRejectedException)
            {
                Interlocked.Increment(ref failed);
            }
        });
        return failed;
    }

    public async ValueTask DisposeAsync()
    {
        await Host.DisposeAsync();
        await V1.DisposeAsync();
        await V2.DisposeAsync();
    }
}
