using System.Net;
using System.Net.Sockets;
using MeshClient.Balancing;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// Hosts outside the mesh (dotted names no provider knows) pass through without a table: before, each distinct
/// host kept a table with a 5 s timer for 10 minutes, so a webhook sender calling thousands of hosts grew without
/// bound (2,000 hosts: 2,000 tables and 2,000 timers). Every host name here resolves to a loopback backend through
/// the primary handler's connect callback.
/// </summary>
public sealed class ExternalHostTests(ITestOutputHelper output)
{
    private const string ExternalSuffix = ".example.test";

    /// <summary>A primary handler that connects every <c>*.example.test</c> host to <paramref name="port"/> on 127.0.0.1.</summary>
    private static SocketsHttpHandler LoopbackHandler(int port) => new()
    {
        PooledConnectionLifetime = TimeSpan.Zero, // one connection per request: 2,000 hosts leave no pool behind
        ConnectCallback = async (context, cancellationToken) =>
        {
            var target = context.DnsEndPoint.Host.EndsWith(ExternalSuffix, StringComparison.OrdinalIgnoreCase)
                ? new IPEndPoint(IPAddress.Loopback, port)
                : (EndPoint)context.DnsEndPoint;
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(target, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };

    [Fact]
    public async Task CallsToThousandsOfUnknownDottedHosts_LeaveABoundedNumberOfTablesAndTimers()
    {
        await using var backend = await TestBackend.StartAsync("outside");
        var time = new CountingTimeProvider(FakeTime.Create());
        await using var host = MeshHost.Create(new Dictionary<string, string?>(), services =>
        {
            services.AddSingleton<TimeProvider>(time);
            services.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => LoopbackHandler(backend.Port));
        });
        var client = host.CreateClient();

        const int Hosts = 2000;
        await Load.RunAsync(Hosts, concurrency: 8, async i =>
        {
            using var response = await client.GetAsync($"http://hook{i}{ExternalSuffix}/event");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        });

        await Poll.UntilAsync(() => host.Registry.Tables.Count == 0);
        output.WriteLine($"tables {host.Registry.Tables.Count}, remembered hosts {host.Registry.ExternalHostCount}, live timers {string.Join(", ", time.LiveByKind().Select(k => $"{k.Key}={k.Value}"))}");
        Assert.Equal(Hosts, backend.Count);
        Assert.Equal(0, time.LiveOf(nameof(ServiceTable)));
        Assert.InRange(host.Registry.ExternalHostCount, 1, ServiceTableRegistry.MaxExternalHosts);

        // A host called again takes the fast path: no lookup, no table, no timer.
        var created = time.CreatedOf(nameof(ServiceTable));
        for (var i = 0; i < 50; i++)
        {
            using var response = await client.GetAsync($"http://hook{Hosts - 1}{ExternalSuffix}/again");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Empty(host.Registry.Tables);
        Assert.Equal(created, time.CreatedOf(nameof(ServiceTable)));
    }

    [Fact]
    public async Task AnOutsideHost_ThatConfigurationComesToKnow_IsBalanced()
    {
        await using var outside = await TestBackend.StartAsync("outside");
        await using var inside = await TestBackend.StartAsync("inside");
        await using var host = MeshHost.Create(new Dictionary<string, string?>(), services =>
            services.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => LoopbackHandler(outside.Port)));
        var client = host.CreateClient();

        Assert.Equal("outside", await client.GetStringAsync($"http://orders{ExternalSuffix}/a"));
        Assert.Equal("outside", await client.GetStringAsync($"http://orders{ExternalSuffix}/b"));
        await Poll.UntilAsync(() => host.Registry.Tables.Count == 0);

        host.Configuration.Replace(new Dictionary<string, string?> { [$"Mesh:Services:orders{ExternalSuffix}:Endpoints:0:Address"] = inside.Address.ToString() });
        await Poll.UntilAsync(async () => await client.GetStringAsync($"http://orders{ExternalSuffix}/c") == "inside");
        Assert.Single(host.Registry.Tables);
    }

    [Fact]
    public async Task AnOutsideHost_IsLookedUpAgainInTheBackground_AfterTheRefreshInterval()
    {
        await using var outside = await TestBackend.StartAsync("outside");
        var fake = FakeTime.Create();
        var time = new CountingTimeProvider(fake);
        await using var host = MeshHost.Create(new Dictionary<string, string?>(), services =>
        {
            services.AddSingleton<TimeProvider>(time);
            services.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => LoopbackHandler(outside.Port));
        });
        var client = host.CreateClient();
        Assert.Equal("outside", await client.GetStringAsync($"http://api{ExternalSuffix}/a"));
        await Poll.UntilAsync(() => host.Registry.Tables.Count == 0);
        Assert.Equal(1, time.CreatedOf(nameof(ServiceTable)));

        // Within the interval: no lookup at all. After it: one lookup (a table that lives until discovery answers).
        Assert.Equal("outside", await client.GetStringAsync($"http://api{ExternalSuffix}/b"));
        Assert.Equal(1, time.CreatedOf(nameof(ServiceTable)));
        fake.Advance(ServiceTableRegistry.RefreshInterval);
        Assert.Equal("outside", await client.GetStringAsync($"http://api{ExternalSuffix}/c"));
        Assert.Equal("outside", await client.GetStringAsync($"http://api{ExternalSuffix}/d"));
        await Poll.UntilAsync(() => host.Registry.Tables.Count == 0);
        Assert.Equal(2, time.CreatedOf(nameof(ServiceTable)));
        Assert.Equal(0, time.LiveOf(nameof(ServiceTable)));
        Assert.Equal(1, host.Registry.ExternalHostCount);
    }
}
