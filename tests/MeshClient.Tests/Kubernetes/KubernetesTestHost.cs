using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using MeshClient.Discovery;
using MeshClient.Kubernetes;
using MeshClient.KubernetesServer;
using MeshClient.Tests.Consul;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.ServiceDiscovery;
using k8s.Models;

namespace MeshClient.Tests.Kubernetes;

/// <summary>
/// A mesh with <c>AddKubernetes()</c> pointed at a <see cref="KubernetesTestServer"/> through a kubeconfig file (token
/// auth, default namespace <c>shop</c>), with every log line collected.
/// </summary>
internal sealed class KubernetesTestHost : ProviderTestHost
{
    private readonly string _directory;

    private KubernetesTestHost(MeshHost host, FakeLogCollector logs, string directory)
        : base(host, logs)
    {
        _directory = directory;
    }

    public KubernetesWatchCache Cache => Host.Services.GetRequiredService<KubernetesWatchCache>();

    public static KubernetesTestHost Create(
        KubernetesTestServer server,
        Action<Dictionary<string, string?>>? settings = null,
        Action<IServiceCollection>? configure = null)
    {
        var directory = Directory.CreateTempSubdirectory("mesh-k8s-").FullName;
        var kubeconfig = Path.Combine(directory, "config");
        File.WriteAllText(kubeconfig, KubeConfig(server.Address, server.Token, "shop"));
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Mesh:Kubernetes:KubeConfigPath"] = kubeconfig,
            ["Mesh:Kubernetes:WatchTimeout"] = "00:00:30",
            ["Mesh:Kubernetes:RequestTimeout"] = "00:00:02",
            ["Mesh:Kubernetes:RetryBaseDelay"] = "00:00:00.050",
            ["Mesh:Kubernetes:RetryMaxDelay"] = "00:00:00.400",
            ["Mesh:LoadBalancer"] = "RoundRobin",
        };
        settings?.Invoke(values);
        var logs = new FakeLogCollector();
        var host = CreateHost(values, logs, services =>
        {
            // No service-account directory on a test machine (nor one that could leak in from the environment).
            services.AddMesh().AddKubernetes(o => o.ServiceAccountPath = Path.Combine(directory, "no-serviceaccount"));
            configure?.Invoke(services);
        });
        return new KubernetesTestHost(host, logs, directory);
    }

    public static string KubeConfig(Uri server, string? token, string? ns) => $"""
        apiVersion: v1
        kind: Config
        clusters:
        - name: test
          cluster:
            server: {server.GetLeftPart(UriPartial.Authority)}
        users:
        - name: test
          user:
            token: {token ?? "any-token"}
        contexts:
        - name: test
          context:
            cluster: test
            user: test
        {(ns is null ? string.Empty : "    namespace: " + ns)}
        current-context: test
        """;

    /// <summary>What discovery currently says about the service: endpoint id → address (through the public resolver).</summary>
    public Task<IReadOnlyDictionary<string, string>> EndpointsAsync(string service) =>
        EndpointsAsync(service, e => e.EndPoint.ToString()!);

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>One endpoint of a slice, as a test describes it.</summary>
internal sealed record PodEndpoint(string Pod, string Address, bool? Ready = true, bool? Serving = null, bool? Terminating = null, string? Zone = null, string? Node = null, string[]? ForZones = null);

/// <summary>Builds EndpointSlices the way the EndpointSlice controller writes them.</summary>
internal static class Slices
{
    public static V1EndpointSlice For(string service, string name, IEnumerable<PodEndpoint> endpoints, string addressType = "IPv4", params (string? Name, int Port, string? AppProtocol)[] ports) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = name,
            Labels = new Dictionary<string, string>
            {
                ["kubernetes.io/service-name"] = service,
                ["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io",
            },
        },
        AddressType = addressType,
        Endpoints = [.. endpoints.Select(e => new V1Endpoint
        {
            Addresses = [e.Address],
            Conditions = new V1EndpointConditions { Ready = e.Ready, Serving = e.Serving ?? e.Ready, Terminating = e.Terminating },
            TargetRef = new V1ObjectReference { Kind = "Pod", Name = e.Pod, NamespaceProperty = null },
            Zone = e.Zone,
            NodeName = e.Node,
            Hints = e.ForZones is null ? null : new V1EndpointHints { ForZones = [.. e.ForZones.Select(z => new V1ForZone { Name = z })] },
        })],
        Ports = [.. ports.Select(p => new Discoveryv1EndpointPort { Name = p.Name, Port = p.Port, Protocol = "TCP", AppProtocol = p.AppProtocol })],
    };

    public static V1EndpointSlice Http(string service, string name, int port, params PodEndpoint[] endpoints) =>
        For(service, name, endpoints, "IPv4", ("http", port, null));
}

/// <summary>
/// Pods: real Kestrel servers on 127.0.0.2, 127.0.0.3, … all on one port (as pods of a Deployment share their
/// container port), each counting the requests it gets and when the last one arrived.
/// </summary>
internal sealed class Pods : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Pod> _pods = new();
    private int _next = 2;

    private Pods(int port) => Port = port;

    public int Port { get; }

    public static async Task<Pods> StartAsync(int count)
    {
        for (var attempt = 0; ; attempt++)
        {
            // The OS picks a port on the first address; the others take the same one (free on another address).
            var first = await Pod.StartAsync("pod-0", IPAddress.Parse("127.0.0.2"), 0);
            var pods = new Pods(first.Port) { _next = 3 };
            pods._pods[first.Name] = first;
            try
            {
                for (var i = 1; i < count; i++)
                {
                    await pods.AddAsync("pod-" + i.ToString(CultureInfo.InvariantCulture));
                }

                return pods;
            }
            catch (IOException) when (attempt < 3)
            {
                await pods.DisposeAsync();
            }
        }
    }

    public Pod this[string name] => _pods[name];

    public IEnumerable<Pod> All => _pods.Values;

    public async Task<Pod> AddAsync(string name)
    {
        var address = IPAddress.Parse("127.0.0." + Interlocked.Increment(ref _next).ToString(CultureInfo.InvariantCulture));
        var pod = await Pod.StartAsync(name, address, Port);
        _pods[name] = pod;
        return pod;
    }

    public async Task RemoveAsync(string name)
    {
        if (_pods.TryRemove(name, out var pod))
        {
            await pod.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var pod in _pods.Values)
        {
            await pod.DisposeAsync();
        }

        _pods.Clear();
    }
}

/// <summary>One pod: a Kestrel server on its own loopback address.</summary>
internal sealed class Pod : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _count;
    private long _lastRequest;

    private Pod(string name, IPAddress address, WebApplication app)
    {
        Name = name;
        Address = address;
        _app = app;
    }

    public string Name { get; }

    public IPAddress Address { get; }

    public int Port { get; private set; }

    public int Count => Volatile.Read(ref _count);

    /// <summary>Gets the timestamp (<see cref="TimeProvider.System"/>) of the last request received, or 0.</summary>
    public long LastRequest => Interlocked.Read(ref _lastRequest);

    public PodEndpoint Endpoint(bool? ready = true, bool? serving = null, bool? terminating = null, string? zone = null) =>
        new(Name, Address.ToString(), ready, serving, terminating, zone);

    public static async Task<Pod> StartAsync(string name, IPAddress address, int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(address, port));
        var app = builder.Build();
        var pod = new Pod(name, address, app);
        app.Run(async context =>
        {
            Interlocked.Increment(ref pod._count);
            Interlocked.Exchange(ref pod._lastRequest, TimeProvider.System.GetTimestamp());
            await context.Response.WriteAsync(name);
        });
        await app.StartAsync();
        pod.Port = new Uri(app.Urls.First()).Port;
        return pod;
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}

/// <summary>Steady traffic at a fixed rate until stopped, counting requests and failures.</summary>
internal sealed class Traffic : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _run;
    private int _requests;

    private Traffic(HttpClient client, string url, TimeSpan period)
    {
        _run = Task.Run(async () =>
        {
            var calls = new List<Task>();
            var started = TimeProvider.System.GetTimestamp();
            for (var i = 0; !_stop.IsCancellationRequested; i++)
            {
                var due = TimeSpan.FromTicks(period.Ticks * i) - TimeProvider.System.GetElapsedTime(started);
                if (due > TimeSpan.FromMilliseconds(1))
                {
                    await Task.Delay(due);
                }

                Interlocked.Increment(ref _requests);
                calls.Add(Task.Run(async () =>
                {
                    try
                    {
                        using var response = await client.GetAsync(url);
                        if (!response.IsSuccessStatusCode)
                        {
                            Failures.Enqueue(((int)response.StatusCode).ToString(CultureInfo.InvariantCulture));
                        }
                    }
                    catch (Exception ex)
                    {
                        Failures.Enqueue(ex.GetType().Name + ": " + ex.Message);
                    }
                }));
            }

            await Task.WhenAll(calls);
        });
    }

    public int Requests => Volatile.Read(ref _requests);

    public ConcurrentQueue<string> Failures { get; } = new();

    /// <summary>Starts <paramref name="perSecond"/> requests a second to <paramref name="url"/>.</summary>
    public static Traffic Start(HttpClient client, string url, int perSecond) => new(client, url, TimeSpan.FromSeconds(1.0 / perSecond));

    /// <summary>Stops sending and waits for the calls in flight.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await _run;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stop.Dispose();
    }
}
