using System.Collections;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using MeshClient.Consul;
using MeshClient.ConsulServer;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace MeshClient.Tests.Consul;

/// <summary>
/// The ACL token is redacted everywhere: one sweep over everything a process could show — every log record of every
/// category at Trace level with its scopes and state, every exception, every span of every source (tags, events,
/// links, baggage), every metric measurement's tags, and the options' <c>ToString()</c> — through discovery,
/// refusals, self-registration, a proxy that echoes the token, and an unreachable agent.
/// </summary>
public sealed class ConsulTokenRedactionTests
{
    private const string Token = "5e1f-sweep-token-a41c-unique-9d2b";
    private const string ReadOnlyToken = "77aa-sweep-read-only-0c3e-unique";

    [Fact]
    public void OptionsToString_ShowsTheTokenRedacted()
    {
        var options = new ConsulOptions { Token = Token, Address = "https://user:pass@consul.internal:8501/prefix?token=" + Token };
        var text = options.ToString();
        Assert.DoesNotContain(Token, text, StringComparison.Ordinal);
        Assert.DoesNotContain("pass", text, StringComparison.Ordinal);
        Assert.Contains("Token = [redacted]", text, StringComparison.Ordinal);
        Assert.Contains("Address = https://consul.internal:8501/prefix", text, StringComparison.Ordinal);
        Assert.Contains("Token = (none)", new ConsulOptions().ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Token_AppearsNowhere_InLogsScopesExceptionsSpansMetricsOrOptions()
    {
        var seen = new ConcurrentQueue<string>();
        using var activities = new ActivityListener
        {
            ShouldListenTo = _ => true,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                seen.Enqueue(activity.Source.Name + " " + activity.DisplayName + " " + activity.OperationName + " " + activity.StatusDescription);
                foreach (var tag in activity.TagObjects)
                {
                    seen.Enqueue(tag.Key + "=" + tag.Value);
                }

                foreach (var baggage in activity.Baggage)
                {
                    seen.Enqueue(baggage.Key + "=" + baggage.Value);
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
        void Record(Instrument instrument, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            seen.Enqueue(instrument.Meter.Name + " " + instrument.Name);
            foreach (var tag in tags)
            {
                seen.Enqueue(tag.Key + "=" + tag.Value);
            }
        }

        meters.SetMeasurementEventCallback<long>((instrument, _, tags, _) => Record(instrument, tags));
        meters.SetMeasurementEventCallback<double>((instrument, _, tags, _) => Record(instrument, tags));
        meters.SetMeasurementEventCallback<int>((instrument, _, tags, _) => Record(instrument, tags));
        meters.Start();

        await using var a = await TestBackend.StartAsync("a");
        var server = new ConsulServerOptions { AclEnabled = true, AclDefaultPolicy = "deny" };
        server.AclTokens.Add(new ConsulAclToken(Token, "8c1f6f0e-0000-4000-8000-00000000000a", CanRead: true, CanWrite: true));
        server.AclTokens.Add(new ConsulAclToken(ReadOnlyToken, "8c1f6f0e-0000-4000-8000-00000000000b", CanRead: true, CanWrite: false));
        var consul = await ConsulTestServer.StartAsync(server);
        consul.Register(Services.On(a, "web"));
        var exceptions = new List<Exception>();

        // 1. Discovery and self-registration that work, with HttpClient logging (request headers at Trace) added back
        //    to the Consul client, which has none by default.
        await using (var mesh = ConsulTestHost.Create(consul, s =>
        {
            s["Mesh:Consul:Token"] = Token;
            s["Mesh:Consul:Registration:Enabled"] = "true";
            s["Mesh:Consul:Registration:ServiceName"] = "orders";
            s["Mesh:Consul:Registration:Port"] = "8080";
            s["Mesh:Consul:Registration:Address"] = "127.0.0.1";
        }, services => services.AddHttpClient(ConsulClient.HttpClientName).AddDefaultLogger()))
        {
            Assert.Equal("a", await mesh.CreateClient().GetStringAsync("http://web/"));
            var registration = mesh.Services.GetServices<IHostedService>().OfType<ConsulRegistrationService>().Single();
            await registration.StartAsync(CancellationToken.None);
            await Eventually.TrueAsync(() => mesh.Events(310).Count == 1, TimeSpan.FromSeconds(5), "registered");
            await registration.StopAsync(CancellationToken.None);
            Assert.Contains(mesh.Logs.GetSnapshot(), r => r.Category?.StartsWith("System.Net.Http.HttpClient.MeshClient.Consul", StringComparison.Ordinal) == true
                && r.Level == Microsoft.Extensions.Logging.LogLevel.Trace && r.Message.StartsWith("Request Headers", StringComparison.Ordinal));
            Sweep(mesh, seen);
        }

        // 2. A read-only token (403 on registration), a proxy echoing the token in an error, then the agent gone.
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
            var registration = mesh.Services.GetServices<IHostedService>().OfType<ConsulRegistrationService>().Single();
            await registration.StartAsync(CancellationToken.None);
            await Eventually.TrueAsync(() => mesh.Events(311).Count == 1, TimeSpan.FromSeconds(5), "the refused registration is logged");
            await registration.StopAsync(CancellationToken.None);

            var client = mesh.Services.GetRequiredService<ConsulClient>();
            consul.Faults.Inject(ConsulFault.EchoTokenInError, "/v1/health/");
            exceptions.Add(await Assert.ThrowsAsync<ConsulException>(() => client.GetHealthServiceAsync("web", 0, CancellationToken.None)));
            consul.Faults.Clear();

            await consul.DisposeAsync();
            exceptions.Add(await Assert.ThrowsAsync<ConsulException>(() => client.GetHealthServiceAsync("web", 0, CancellationToken.None)));
            exceptions.Add(await Assert.ThrowsAsync<UnknownServiceException>(() => mesh.CreateClient().GetAsync("http://never-seen/")));
            Sweep(mesh, seen);
        }

        foreach (var exception in exceptions)
        {
            seen.Enqueue(exception.ToString());
            foreach (DictionaryEntry entry in exception.Data)
            {
                seen.Enqueue(entry.Key + "=" + entry.Value);
            }
        }

        Assert.True(seen.Count > 100, $"the sweep saw {seen.Count} items");
        Assert.Contains(seen, s => s.Contains("[token]", StringComparison.Ordinal)); // the echo was there, masked
        Assert.Contains(seen, s => s.Contains("Token = [redacted]", StringComparison.Ordinal));
        foreach (var text in seen)
        {
            Assert.DoesNotContain(Token, text, StringComparison.Ordinal);
            Assert.DoesNotContain(ReadOnlyToken, text, StringComparison.Ordinal);
        }
    }

    private static void Sweep(ConsulTestHost mesh, ConcurrentQueue<string> seen)
    {
        seen.Enqueue(mesh.Services.GetRequiredService<IOptions<ConsulOptions>>().Value.ToString());
        seen.Enqueue(mesh.Services.GetRequiredService<ConsulClient>().Options.ToString());
        foreach (var record in mesh.Logs.GetSnapshot())
        {
            seen.Enqueue(record.Category + " " + record.Message);
            seen.Enqueue(record.Exception?.ToString() ?? string.Empty);
            foreach (var (key, value) in record.StructuredState ?? [])
            {
                seen.Enqueue(key + "=" + value);
            }

            foreach (var scope in record.Scopes)
            {
                seen.Enqueue(scope?.ToString() ?? string.Empty);
                if (scope is IEnumerable<KeyValuePair<string, object?>> pairs)
                {
                    foreach (var (key, value) in pairs)
                    {
                        seen.Enqueue(key + "=" + value);
                    }
                }
            }
        }
    }
}
