using System.Diagnostics;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace MeshClient.Tests.Resilience;

/// <summary>
/// Issue 12, item 11: an app with Aspire's ServiceDefaults (the standard resilience handler and service discovery on
/// every client through <c>ConfigureHttpClientDefaults</c>) and <c>AddMesh()</c> gets the mesh's attempts, not the
/// standard pipeline's retries of the mesh's retries.
/// </summary>
public sealed class StackedResilienceTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static Task Unavailable(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        return Task.CompletedTask;
    }

    private static MeshHost ServiceDefaultsHost(Backends backends, FakeLogCollector logs, bool keep, Action<Microsoft.Extensions.Http.Resilience.HttpStandardResilienceOptions>? standard = null)
    {
        var settings = MeshHost.ServiceSettings("catalog", "RoundRobin", backends.WithWeight(1));
        if (keep)
        {
            settings["Mesh:KeepOtherResilienceHandlers"] = "true";
        }

        return MeshHost.Create(settings, services =>
        {
            services.AddLogging(l => l.AddProvider(new FakeLoggerProvider(logs)));

            // What ServiceDefaults' AddServiceDefaults() does for HTTP clients.
            services.AddServiceDiscovery();
            services.ConfigureHttpClientDefaults(http =>
            {
                if (standard is null)
                {
                    http.AddStandardResilienceHandler();
                }
                else
                {
                    http.AddStandardResilienceHandler(standard);
                }

                http.AddServiceDiscovery();
            });
        });
    }

    [Fact]
    public async Task ServiceDefaultsApp_FourEndpointsAnswering503_CostsTheMeshsThreeAttemptsPerCall_AndOneWarningPerClient()
    {
        await using var backends = await Backends.StartAsync(4);
        backends.ForEach(b => b.Behavior = Unavailable);
        var logs = new FakeLogCollector();
        await using var host = ServiceDefaultsHost(backends, logs, keep: false);

        var clock = Stopwatch.StartNew();
        for (var call = 0; call < 3; call++)
        {
            var before = backends.Sum(b => b.Count);
            using var response = await host.CreateClient("test").GetAsync(new Uri("http://catalog/"));
            Assert.Equal(503, (int)response.StatusCode);
            Assert.Equal(3, backends.Sum(b => b.Count) - before); // 1 + MaxRetries (2); before the fix: 12
        }

        output.WriteLine($"3 calls: {backends.Sum(b => b.Count)} attempts in {clock.Elapsed.TotalSeconds:0.00} s");
        using (await host.CreateClient("other").GetAsync(new Uri("http://catalog/")))
        {
        }

        var warnings = logs.GetSnapshot().Where(r => r.Id.Id == 13).ToList();
        warnings.ForEach(w => output.WriteLine(w.Message));
        Assert.Equal(2, warnings.Count); // once per client, however many clients and handlers are built
        Assert.All(warnings, w => Assert.Equal(LogLevel.Warning, w.Level));
        Assert.Contains(warnings, w => w.Message.StartsWith("HttpClient 'test': removed 1 resilience handler(s)", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Message.StartsWith("HttpClient 'other': removed 1 resilience handler(s)", StringComparison.Ordinal));
        Assert.Contains(logs.GetSnapshot(), r => r.Id.Id == 10); // AddServiceDiscovery's handler went too, as before
    }

    [Fact]
    public async Task KeepOtherResilienceHandlers_KeepsThem_AndTheAttemptsMultiply()
    {
        await using var backends = await Backends.StartAsync(4);
        backends.ForEach(b => b.Behavior = Unavailable);
        var logs = new FakeLogCollector();

        // Short standard retry delays, or each call would wait ~9 s in the standard pipeline's backoff.
        await using var host = ServiceDefaultsHost(backends, logs, keep: true, o =>
        {
            o.Retry.Delay = TimeSpan.FromMilliseconds(1);
            o.Retry.UseJitter = false;
            o.Retry.BackoffType = Polly.DelayBackoffType.Constant;
        });

        using var response = await host.CreateClient("test").GetAsync(new Uri("http://catalog/"));

        Assert.Equal(503, (int)response.StatusCode);
        Assert.Equal(12, backends.Sum(b => b.Count)); // (1 + 3 standard retries) × (1 + 2 mesh retries)
        Assert.DoesNotContain(logs.GetSnapshot(), r => r.Id.Id == 13);
    }
}
