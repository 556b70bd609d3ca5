using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;

namespace MeshClient.Tests.Configuration;

/// <summary>
/// A reload to an invalid configuration (a non-http scheme, port 70000, weight -1, a weight that is not a number, an
/// endpoint listed twice) is refused and logged, and the previous endpoints keep serving; a valid reload then applies.
/// </summary>
public sealed class ConfigurationReloadRejectionTests(ITestOutputHelper output)
{
    [Fact]
    public async Task InvalidReloads_AreRefusedAndLoggedOnce_ThePreviousEndpointsKeepServing_WithZeroFailedRequests()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var c = await TestBackend.StartAsync("c");
        var logs = new FakeLogCollector();
        var good = MeshHost.ServiceSettings("catalog", "RoundRobin", (a, 1), (b, 1));
        await using var host = MeshHost.Create(good, services => services.AddLogging(l => l.SetMinimumLevel(LogLevel.Information).AddProvider(new FakeLoggerProvider(logs))));
        var client = host.CreateClient();
        (await client.GetAsync("http://catalog/")).EnsureSuccessStatusCode();
        var table = host.Registry.GetTable("catalog");
        var endpoints = table.Snapshot!.All.Select(e => e.Address).ToArray();

        using var stop = new CancellationTokenSource();
        var successes = 0;
        var failures = 0;
        var load = LoadAsync(client, () => Interlocked.Increment(ref successes), () => Interlocked.Increment(ref failures), stop.Token);

        var invalid = new (string Key, string Value, string Expected)[]
        {
            ("Mesh:Services:catalog:Endpoints:0:Address", $"ftp://127.0.0.1:{a.Port}", "Mesh:Services:catalog:Endpoints:0:Address 'ftp://"),
            ("Mesh:Services:catalog:Endpoints:0:Address", "http://127.0.0.1:70000", "has port 70000: the port must be between 1 and 65535"),
            ("Mesh:Services:catalog:Endpoints:1:Weight", "-1", "Mesh:Services:catalog:Endpoints:1:Weight must be between 1 and 65535, was -1."),
            ("Mesh:Services:catalog:Endpoints:1:Weight", "heavy", "'Mesh:Services:catalog:Endpoints:1:Weight'"),
            ("Mesh:Services:catalog:Endpoints:1:Address", a.Address.ToString(), "Mesh:Services:catalog:Endpoints:1:Address"),
        };
        for (var i = 0; i < invalid.Length; i++)
        {
            var (key, value, expected) = invalid[i];
            var settings = new Dictionary<string, string?>(good, StringComparer.OrdinalIgnoreCase) { [key] = value };

            // Saved twice with the same mistake: refused twice, said once.
            host.Configuration.Replace(settings);
            host.Configuration.Replace(settings);
            var refusals = logs.GetSnapshot().Where(r => r.Id.Id == 11).ToList();
            Assert.Equal(i + 1, refusals.Count);
            Assert.Equal(LogLevel.Warning, refusals[^1].Level);
            Assert.Contains(expected, refusals[^1].Message, StringComparison.Ordinal);
            output.WriteLine(refusals[^1].Message);

            var served = (a.Count, b.Count);
            await Poll.UntilAsync(() => a.Count > served.Item1 + 5 && b.Count > served.Item2 + 5);
            Assert.Equal(endpoints, table.Snapshot!.All.Select(e => e.Address));
        }

        // A valid reload applies at once and says the refusals are over.
        host.Configuration.Replace(MeshHost.ServiceSettings("catalog", "RoundRobin", (c, 1)));
        await Poll.UntilAsync(() => table.Snapshot!.All.Length == 1 && table.Snapshot.All[0].Address == c.Address.GetLeftPart(UriPartial.Authority));
        var servedByC = c.Count;
        await Poll.UntilAsync(() => c.Count > servedByC + 10);
        Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 12);

        stop.Cancel();
        await load;
        output.WriteLine($"{successes} requests, {failures} failed");
        Assert.Equal(0, failures);
    }

    [Fact]
    public async Task InAHost_TheOptionsMonitorStillThrowsAtWhoeverReloads_ButTheMeshRefusesLogsAndKeepsServing()
    {
        await using var a = await TestBackend.StartAsync("a");
        var logs = new FakeLogCollector();
        var configuration = new TestConfiguration(MeshHost.ServiceSettings("catalog", null, (a, 1)));
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        ((IConfigurationBuilder)builder.Configuration).Add(configuration);
        builder.Logging.AddProvider(new FakeLoggerProvider(logs));
        builder.Services.AddMesh();
        using var host = builder.Build();
        await host.StartAsync(); // ValidateOnStart: Microsoft.Extensions.Options' monitor now follows reloads too
        var client = host.Services.GetRequiredService<IHttpClientFactory>().CreateClient("test");
        (await client.GetAsync("http://catalog/")).EnsureSuccessStatusCode();

        var invalid = new Dictionary<string, string?>(MeshHost.ServiceSettings("catalog", null, (a, 1))) { ["Mesh:Services:catalog:Endpoints:0:Weight"] = "-1" };

        // The monitor's own validation failure reaches whoever reloaded (a file watcher's task, here the test); the
        // mesh does not depend on it.
        var thrown = Assert.ThrowsAny<Exception>(() => configuration.Replace(invalid));
        Assert.IsType<OptionsValidationException>(thrown is AggregateException aggregate ? aggregate.Flatten().InnerExceptions.Single() : thrown);

        Assert.Contains("Weight must be between 1 and 65535, was -1.", Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 11).Message, StringComparison.Ordinal);
        for (var i = 0; i < 10; i++)
        {
            (await client.GetAsync("http://catalog/")).EnsureSuccessStatusCode();
        }

        await host.StopAsync();
    }

    private static Task LoadAsync(HttpClient client, Action success, Action failure, CancellationToken stop) =>
        Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var response = await client.GetAsync("http://catalog/", CancellationToken.None);
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
