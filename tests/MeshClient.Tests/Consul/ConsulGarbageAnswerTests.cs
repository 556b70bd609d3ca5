using System.Globalization;
using System.Text;
using MeshClient.ConsulServer;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace MeshClient.Tests.Consul;

/// <summary>
/// Consul answering garbage with a 200 (malformed, truncated, wrong-typed, deeply nested, huge, not UTF-8) while
/// traffic flows to real backends: no request fails, the endpoints do not move, the rejection is logged once, and
/// discovery recovers when good answers return.
/// </summary>
public sealed class ConsulGarbageAnswerTests(ITestOutputHelper output)
{
    [Fact]
    public async Task GarbageAnswers_WhileTrafficFlows_ZeroFailedRequests_LastGoodEndpointsKeepServing_OneWarning_ThenRecovery()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var c = await TestBackend.StartAsync("c");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Faults.HugeBodyBytes = 2 * 1024 * 1024;
        consul.Register(Services.On(a, "web"));
        consul.Register(Services.On(b, "web"));

        // A one-second wait: each blocking query ends by itself, so every fault is met without cutting a connection.
        await using var mesh = ConsulTestHost.Create(consul, s =>
        {
            s["Mesh:Consul:Wait"] = "00:00:01";
            s["Mesh:Consul:MaxResponseBytes"] = (1024 * 1024).ToString(CultureInfo.InvariantCulture);
        });
        var client = mesh.CreateClient();
        (await client.GetAsync("http://web/")).EnsureSuccessStatusCode();
        var good = await mesh.EndpointsAsync("web");
        Assert.Equal(["a", "b"], good.Keys.Order());

        using var stop = new CancellationTokenSource();
        var failures = 0;
        var successes = 0;
        var load = Load(client, () => Interlocked.Increment(ref successes), () => Interlocked.Increment(ref failures), stop.Token);

        var fixture = File.ReadAllBytes(Path.Combine(ConsulConformanceTests.FixtureDirectory, "docs-health-service.json"));
        var garbage = new (string Name, byte[]? Body)[]
        {
            ("malformed", "[{\"Node\":"u8.ToArray()),
            ("truncated", fixture[..(fixture.Length * 2 / 3)]),
            ("wrong-typed", Encoding.UTF8.GetBytes($"[{{\"Service\":{{\"ID\":\"a\",\"Address\":\"127.0.0.1\",\"Port\":\"{a.Port}\"}}}}]")),
            ("deeply nested", Encoding.ASCII.GetBytes(new string('[', 10_000) + new string(']', 10_000))),
            ("JSON null", "null"u8.ToArray()),
            ("an object", "{\"Service\":{}}"u8.ToArray()),
            ("not UTF-8", [(byte)'[', (byte)'"', 0xFF, (byte)'"', (byte)']']),
            ("huge", null),
        };
        foreach (var (name, body) in garbage)
        {
            if (body is null)
            {
                consul.Faults.Inject(ConsulFault.HugeBody, "/v1/health/");
            }
            else
            {
                consul.Faults.Body = body;
                consul.Faults.Inject(ConsulFault.Body, "/v1/health/");
            }

            var before = consul.CountRequests("/v1/health/");
            await Eventually.TrueAsync(() => consul.CountRequests("/v1/health/") >= before + 2, TimeSpan.FromSeconds(10), $"the watch meets the {name} answer and retries");
            Assert.Equal(good, await mesh.EndpointsAsync("web"));
            var served = Volatile.Read(ref successes);
            await Eventually.TrueAsync(() => Volatile.Read(ref successes) > served + 10, TimeSpan.FromSeconds(5), $"requests flow during the {name} answers");
        }

        // One warning for the whole spell of unusable answers (one state: answers rejected), naming the problem.
        var rejected = mesh.Events(305);
        foreach (var record in rejected)
        {
            output.WriteLine(record.Message);
        }

        var warning = Assert.Single(rejected);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("malformed JSON", warning.Message, StringComparison.Ordinal);
        Assert.Contains("last known endpoints keep serving", warning.Message, StringComparison.Ordinal);
        Assert.Empty(mesh.Events(300)); // Consul itself never looked down
        Assert.Empty(mesh.Events(318)); // no instance was judged: no answer was read

        // Good answers again: the watch recovers, and changes flow.
        consul.Faults.Clear();
        consul.Register(Services.On(c, "web"));
        await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("web")).ContainsKey("c"), TimeSpan.FromSeconds(5), "discovery recovers when good answers return");
        await Eventually.TrueAsync(() => mesh.Events(306).Count == 1, TimeSpan.FromSeconds(5), "the recovery is logged once");
        var servedByC = c.Count;
        await Eventually.TrueAsync(() => c.Count > servedByC + 5, TimeSpan.FromSeconds(5), "traffic reaches the new instance");

        stop.Cancel();
        await load;
        output.WriteLine($"{successes} requests, {failures} failed, {consul.CountRequests("/v1/health/")} queries");
        Assert.Equal(0, failures);
        Assert.Single(mesh.Events(305));
    }

    [Fact]
    public async Task UnusableInstances_InAGoodAnswer_AreLeftOut_WithOneWarningPerChange()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web"));
        var ftp = Services.On(a, "web", id: "ftp");
        ftp.Meta = new() { ["scheme"] = "ftp" };
        consul.Register(ftp);
        await using var mesh = ConsulTestHost.Create(consul);
        var client = mesh.CreateClient();
        for (var i = 0; i < 10; i++)
        {
            (await client.GetAsync("http://web/")).EnsureSuccessStatusCode();
        }

        Assert.Equal(["a"], (await mesh.EndpointsAsync("web")).Keys);
        var warning = Assert.Single(mesh.Events(318));
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("instance 'ftp': Meta.scheme 'ftp' is not http or https", warning.Message, StringComparison.Ordinal);

        // Answers that reject the same instance again say nothing new.
        consul.Touch("a");
        await Eventually.TrueAsync(() => consul.CountRequests("/v1/health/service/web") >= 3, TimeSpan.FromSeconds(5), "the watch reads another answer");
        Assert.Single(mesh.Events(318));
    }

    private static Task Load(HttpClient client, Action success, Action failure, CancellationToken stop) =>
        Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var response = await client.GetAsync("http://web/", CancellationToken.None);
                    (response.IsSuccessStatusCode ? success : failure)();
                }
                catch (Exception ex) when (ex is HttpRequestException or MeshException or TaskCanceledException)
                {
                    failure();
                }

                await Task.Delay(2, CancellationToken.None);
            }
        }));
}
