using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using MeshClient.Consul;
using MeshClient.ConsulServer;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MeshClient.Tests.Consul;

/// <summary>ACL tokens: a wrong token is one clear error per state change, and no token ever leaks.</summary>
public sealed class ConsulAclTests
{
    private const string RightToken = "7f1c2e9a-right-secret-4b1d";
    private const string WrongToken = "c0ffee00-wrong-secret-9e8d";
    private const string ReadOnlyToken = "d00dfeed-read-only-secret-1a2b";

    [Fact]
    public async Task WrongToken_LogsOneClearErrorPerStateChange_WithoutACrashLoop()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync(AclServer());
        consul.Register(Services.On(a, "web"));
        Dictionary<string, string?>? settings = null;
        await using var mesh = ConsulTestHost.Create(consul, s =>
        {
            s["Mesh:Consul:Token"] = WrongToken;
            settings = s;
        });
        var client = mesh.CreateClient();

        // Consul refuses the token at first use: the service stays unknown (other providers may know it).
        await Assert.ThrowsAsync<UnknownServiceException>(() => client.GetAsync("http://web/"));
        await Eventually.TrueAsync(() => consul.CountRequests("/v1/health/") >= 5, TimeSpan.FromSeconds(5), "the watch keeps retrying");
        await Task.Delay(TimeSpan.FromSeconds(1)); // a rate measurement needs a window
        var error = Assert.Single(mesh.Events(301));
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Error, error.Level);
        Assert.Contains("ACL not found", error.Message, StringComparison.Ordinal);
        Assert.Contains("Mesh:Consul:Token", error.Message, StringComparison.Ordinal);
        Assert.Empty(mesh.Events(300));

        // Backoff, not a crash loop: base 50 ms doubling to 400 ms is at most ~4 queries a second once capped.
        Assert.InRange(consul.CountRequests("/v1/health/"), 5, 25);

        // The token is fixed by a configuration reload: discovery recovers at once, logged once.
        settings!["Mesh:Consul:Token"] = RightToken;
        mesh.Host.Configuration.Replace(settings);
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                using var response = await client.GetAsync("http://web/");
                return response.IsSuccessStatusCode;
            }
            catch (UnknownServiceException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(3), "discovery works with the right token");
        Assert.Single(mesh.Events(302));

        // Broken again: one more error, and the known endpoints keep serving.
        settings["Mesh:Consul:Token"] = WrongToken;
        mesh.Host.Configuration.Replace(settings);
        await Eventually.TrueAsync(() => mesh.Events(301).Count == 2, TimeSpan.FromSeconds(3), "the new refusal is logged");
        await Load.RunAsync(50, 2, async _ => (await client.GetAsync("http://web/")).EnsureSuccessStatusCode());
        await Task.Delay(TimeSpan.FromSeconds(0.5));
        Assert.Equal(2, mesh.Events(301).Count);
    }

    [Fact]
    public async Task Token_AppearsInNoLogLine_ExceptionMessage_Span_OrMetric()
    {
        var tokens = new[] { RightToken, WrongToken, ReadOnlyToken };
        var seen = new ConcurrentQueue<string>();
        using var activities = new ActivityListener
        {
            ShouldListenTo = _ => true,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                seen.Enqueue(activity.DisplayName);
                seen.Enqueue(activity.StatusDescription ?? string.Empty);
                foreach (var tag in activity.TagObjects)
                {
                    seen.Enqueue(tag.Key + "=" + tag.Value);
                }

                foreach (var e in activity.Events)
                {
                    seen.Enqueue(e.Name);
                    foreach (var tag in e.Tags)
                    {
                        seen.Enqueue(tag.Key + "=" + tag.Value);
                    }
                }
            },
        };
        ActivitySource.AddActivityListener(activities);
        using var meters = new MeterListener { InstrumentPublished = (instrument, listener) => listener.EnableMeasurementEvents(instrument) };
        void Record(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            foreach (var tag in tags)
            {
                seen.Enqueue(tag.Key + "=" + tag.Value);
            }
        }

        meters.SetMeasurementEventCallback<long>((_, _, tags, _) => Record(tags));
        meters.SetMeasurementEventCallback<double>((_, _, tags, _) => Record(tags));
        meters.SetMeasurementEventCallback<int>((_, _, tags, _) => Record(tags));
        meters.Start();

        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync(AclServer());
        consul.Register(Services.On(a, "web"));
        var exceptions = new List<Exception>();

        // 1. An unknown token: 403 "ACL not found" on discovery.
        await using (var mesh = ConsulTestHost.Create(consul, s => s["Mesh:Consul:Token"] = WrongToken))
        {
            exceptions.Add(await Assert.ThrowsAsync<UnknownServiceException>(() => mesh.CreateClient().GetAsync("http://web/")));
            await Eventually.TrueAsync(() => mesh.Events(301).Count == 1, TimeSpan.FromSeconds(5), "the refusal is logged");
            exceptions.Add(await Assert.ThrowsAsync<ConsulException>(() =>
                mesh.Services.GetRequiredService<ConsulClient>().GetHealthServiceAsync("web", 0, CancellationToken.None)));
            Collect(mesh, seen);
        }

        // 2. A read-only token: discovery works, self-registration gets 403 "Permission denied" (accessor id only).
        await using (var mesh = ConsulTestHost.Create(consul, s =>
        {
            s["Mesh:Consul:Token"] = ReadOnlyToken;
            s["Mesh:Consul:Registration:Enabled"] = "true";
            s["Mesh:Consul:Registration:ServiceName"] = "orders";
            s["Mesh:Consul:Registration:Port"] = "8080";
            s["Mesh:Consul:Registration:Address"] = "127.0.0.1";
        }))
        {
            (await mesh.CreateClient().GetAsync("http://web/")).EnsureSuccessStatusCode();
            var hosted = mesh.Services.GetServices<IHostedService>().OfType<ConsulRegistrationService>().Single();
            await hosted.StartAsync(CancellationToken.None);
            await Eventually.TrueAsync(() => mesh.Events(311).Count == 1, TimeSpan.FromSeconds(5), "the refused registration is logged");
            Assert.Contains("lacks permission 'service:write'", mesh.Events(311)[0].Message, StringComparison.Ordinal);
            await hosted.StopAsync(CancellationToken.None);

            // 3. A proxy that echoes the token in an error body: masked.
            consul.Faults.Inject(ConsulFault.EchoTokenInError, "/v1/health/");
            var echoed = await Assert.ThrowsAsync<ConsulException>(() =>
                mesh.Services.GetRequiredService<ConsulClient>().GetHealthServiceAsync("web", 0, CancellationToken.None));
            Assert.Contains("[token]", echoed.Message, StringComparison.Ordinal);
            exceptions.Add(echoed);
            consul.Faults.Clear();
            Collect(mesh, seen);
        }

        foreach (var exception in exceptions)
        {
            seen.Enqueue(exception.ToString());
        }

        Assert.True(seen.Count > 20, "the probes saw something");
        foreach (var text in seen)
        {
            foreach (var token in tokens)
            {
                Assert.DoesNotContain(token, text, StringComparison.Ordinal);
            }
        }
    }

    private static void Collect(ConsulTestHost mesh, ConcurrentQueue<string> seen)
    {
        foreach (var record in mesh.Logs.GetSnapshot())
        {
            seen.Enqueue(record.Message);
            seen.Enqueue(record.Exception?.ToString() ?? string.Empty);
            foreach (var (key, value) in record.StructuredState ?? [])
            {
                seen.Enqueue(key + "=" + value);
            }
        }
    }

    private static ConsulServerOptions AclServer()
    {
        var options = new ConsulServerOptions { AclEnabled = true, AclDefaultPolicy = "deny" };
        options.AclTokens.Add(new ConsulAclToken(RightToken, "8c1f6f0e-0000-4000-8000-000000000001", CanRead: true, CanWrite: true));
        options.AclTokens.Add(new ConsulAclToken(ReadOnlyToken, "8c1f6f0e-0000-4000-8000-000000000002", CanRead: true, CanWrite: false));
        return options;
    }
}
