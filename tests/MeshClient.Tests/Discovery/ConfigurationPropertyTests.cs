using System.Globalization;
using CsCheck;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.ServiceDiscovery;
using Xunit.Abstractions;

namespace MeshClient.Tests.Discovery;

/// <summary>
/// Properties of the configuration binder and validation, over generated <c>Mesh</c> sections with hostile values
/// (non-http schemes, ports out of range, IPv6 in every form, weights negative, huge or not numbers, duplicate
/// addresses, wrong-shaped keys): at start-up and on reload, a configuration is either accepted, and then every
/// endpoint discovered from it is well-formed, or refused with an <see cref="OptionsValidationException"/> whose
/// every failure names its key; a refused reload changes nothing and is logged.
/// </summary>
public sealed class ConfigurationPropertyTests(ITestOutputHelper output)
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(60);

    [Fact]
    public Task GeneratedConfigurations_AreAcceptedWellFormed_OrRefusedNamingTheKey() => Guarded(async () =>
    {
        var accepted = 0;
        var refused = 0;
        await GenConfiguration.SampleAsync(async configuration =>
        {
            var outcome = await StartAsync(configuration);
            if (outcome.Error is null)
            {
                accepted++;
            }
            else
            {
                refused++;
            }
        }, iter: 250, threads: 1, print: c => string.Join(Environment.NewLine, c.Settings.Select(kv => $"{kv.Key} = {kv.Value}")));
        output.WriteLine($"{accepted} configurations accepted, {refused} refused");
        Assert.True(accepted > 20 && refused > 20, $"{accepted} accepted, {refused} refused: the generator must exercise both");
    });

    [Fact]
    public Task GeneratedReloads_AreAppliedWellFormed_OrRefusedLoggedAndWithoutEffect() => Guarded(async () =>
    {
        var applied = 0;
        var refused = 0;
        await GenConfiguration.SampleAsync(async configuration =>
        {
            var logs = new FakeLogCollector();
            var initial = new Dictionary<string, string?> { ["Mesh:Services:catalog:Endpoints:0:Address"] = "http://127.0.0.1:1" };
            await using var host = MeshHost.Create(initial, services => services.AddLogging(b => b.AddProvider(new FakeLoggerProvider(logs))));
            var notifier = host.Services.GetRequiredService<MeshOptionsChangeNotifier>();
            var before = notifier.Current;
            var token = notifier.GetChangeToken();

            // Never throws at whoever reloads, whatever the content.
            host.Configuration.Replace(configuration.Settings);
            var rejections = logs.GetSnapshot().Where(r => r.Id.Id == 11).ToList();
            if (configuration.Valid is false || rejections.Count > 0)
            {
                Assert.True(configuration.Valid is not true, "a valid reload was refused: " + string.Join(" ", rejections.Select(r => r.Message)));
                var record = Assert.Single(rejections);
                Assert.Equal(LogLevel.Warning, record.Level);
                Assert.Contains("Mesh:", record.Message, StringComparison.Ordinal);
                Assert.Same(before, notifier.Current);
                Assert.False(token.HasChanged);
                refused++;
            }
            else
            {
                Assert.NotSame(before, notifier.Current);
                Assert.True(token.HasChanged);
                await AssertWellFormedAsync(host, configuration);
                applied++;
            }
        }, iter: 150, threads: 1, print: c => string.Join(Environment.NewLine, c.Settings.Select(kv => $"{kv.Key} = {kv.Value}")));
        output.WriteLine($"{applied} reloads applied, {refused} refused");
        Assert.True(applied > 10 && refused > 10, $"{applied} applied, {refused} refused: the generator must exercise both");
    });

    [Theory]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Address", "file:///etc/passwd", "Mesh:Services:catalog:Endpoints:0:Address 'file:///etc/passwd' must be an absolute http or https URI such as 'http://10.0.0.7:8080' (not 'file').")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Address", "javascript:alert(1)", "Mesh:Services:catalog:Endpoints:0:Address 'javascript:alert(1)' must be an absolute http or https URI such as 'http://10.0.0.7:8080' (not 'javascript').")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Address", "data:text/plain,hi", "(not 'data')")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Address", "gopher://h/", "(not 'gopher')")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Address", "http://10.0.0.1:70000", "Mesh:Services:catalog:Endpoints:0:Address 'http://10.0.0.1:70000' has port 70000: the port must be between 1 and 65535.")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Address", "http://10.0.0.1:-1", "has port -1: the port must be between 1 and 65535.")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Address", "http://10.0.0.1:0", "has port 0: the port must be between 1 and 65535.")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Address", "http://[::1]:99999", "has port 99999")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Weight", "-1", "Mesh:Services:catalog:Endpoints:0:Weight must be between 1 and 65535, was -1.")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Weight", "2147483648", "'Mesh:Services:catalog:Endpoints:0:Weight'")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:Weight", "ten", "'Mesh:Services:catalog:Endpoints:0:Weight'")]
    [InlineData("Mesh:Services:catalog:Endpoints:0:HostName", "a b", "Mesh:Services:catalog:Endpoints:0:HostName 'a b' must be a host name")]
    [InlineData("Mesh:Services:catalog:Endpoints:1:Address", "http://10.0.0.1:80/", "Mesh:Services:catalog:Endpoints:1:Address 'http://10.0.0.1:80/' is the same endpoint as Endpoints:0; list an endpoint once and give it a Weight.")]
    [InlineData("Mesh:Resilience:MaxRetries", "many", "'Mesh:Resilience:MaxRetries'")]
    public async Task InvalidValues_AreRefused_WithAMessageNamingTheKey(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Mesh:Services:catalog:Endpoints:0:Address"] = "http://10.0.0.1",
            [key] = value,
        };
        await using var host = MeshHost.Create(settings);
        var error = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<MeshOptions>>().Value);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ the generator and its model

    /// <summary>A generated configuration and whether the model says it is valid (null: the model does not know).</summary>
    private sealed record GeneratedConfiguration(Dictionary<string, string?> Settings, bool? Valid, Dictionary<string, int> EndpointCounts);

    private sealed record Value(string? Text, bool? Valid, string? Identity = null);

    private static readonly Gen<Value> GenAddress = Gen.Frequency(
        (6, Gen.OneOf(
            Gen.Const(new Value("http://10.0.0.1", true, "a")), Gen.Const(new Value("http://10.0.0.1:80/", true, "a")), Gen.Const(new Value("HTTP://10.0.0.1:80", true, "a")),
            Gen.Const(new Value("https://10.0.0.1", true, "b")), Gen.Const(new Value("http://10.0.0.2:8080/base", true, "c")), Gen.Const(new Value("http://10.0.0.2:8080/base/", true, "c2")),
            Gen.Const(new Value("http://[::1]:8080", true, "d")), Gen.Const(new Value("http://[0:0:0:0:0:0:0:1]:8080", true, "d")), Gen.Const(new Value("https://[::ffff:127.0.0.1]:8443", true, "e")),
            Gen.Const(new Value("http://[fe80::1%251]:8080", true, "f")), Gen.Const(new Value("http://catalog-1.internal:65535", true, "g")), Gen.Const(new Value("http://localhost:1", true, "h")),

            // All digits but no IPv4 address: a (strange) host name.
            Gen.Const(new Value("http://99999999999999999999", true, "i")))),
        (1, Gen.OneOf(
            Gen.Const(new Value("ftp://10.0.0.1", false)), Gen.Const(new Value("file:///etc/passwd", false)), Gen.Const(new Value("javascript:alert(1)", false)),
            Gen.Const(new Value("data:text/plain,x", false)), Gen.Const(new Value("gopher://10.0.0.1", false)), Gen.Const(new Value("http://10.0.0.1:70000", false)),
            Gen.Const(new Value("http://10.0.0.1:0", false)), Gen.Const(new Value("http://10.0.0.1:-1", false)), Gen.Const(new Value("http://::1:8080", false)),
            Gen.Const(new Value("[::1]:8080", false)), Gen.Const(new Value("10.0.0.1:8080", false)), Gen.Const(new Value("http://10.0.0.1/?q=1", false)),
            Gen.Const(new Value("http://10.0.0.1/#f", false)), Gen.Const(new Value("", false)), Gen.Const(new Value("   ", false)), Gen.Const(new Value("http://", false)),
            Gen.Const(new Value("/relative", false)), Gen.Const(new Value("http://a b", false)))));

    private static readonly Gen<Value> GenWeight = Gen.Frequency(
        (4, Gen.Const(new Value(null, true))),
        (4, Gen.OneOf(Gen.Const("1"), Gen.Const("7"), Gen.Const("65535"), Gen.Const(" 3 ")).Select(w => new Value(w, true))),
        (1, Gen.OneOf(Gen.Const("0"), Gen.Const("-1"), Gen.Const("65536"), Gen.Const("2147483647"), Gen.Const("-2147483648"), Gen.Const("2147483648"),
            Gen.Const("99999999999999999999"), Gen.Const("ten"), Gen.Const("1.5"), Gen.Const("0x10")).Select(w => new Value(w, false))),

        // An empty value binds nothing: the default weight stays.
        (1, Gen.Const(new Value(string.Empty, true))));

    private static readonly Gen<Value> GenHostName = Gen.Frequency(
        (8, Gen.OneOf(Gen.Const(new Value(null, true)), Gen.Const(new Value("catalog.internal", true)), Gen.Const(new Value("catalog.internal:8443", true)), Gen.Const(new Value("", true)))),
        (1, Gen.OneOf(Gen.Const(new Value("a b", false)), Gen.Const(new Value("a/b", false)), Gen.Const(new Value("a?b", false)), Gen.Const(new Value("user@host", false)))));

    private static readonly Gen<Value> GenServiceName = Gen.Frequency(
        (8, Gen.OneOf(Gen.Const(new Value("catalog", true)), Gen.Const(new Value("orders", true)), Gen.Const(new Value("Catalog", true)))),
        (1, Gen.OneOf(Gen.Const(new Value("a/b", false)), Gen.Const(new Value(" ", false)))));

    private static readonly Gen<(string Key, string? Value, bool? Valid)> GenExtra = Gen.OneOf(
        Gen.Const<(string, string?, bool?)>(("Mesh:LoadBalancer", "RoundRobin", true)),
        Gen.Const<(string, string?, bool?)>(("Mesh:LoadBalancer", "Fastest", false)),
        Gen.Const<(string, string?, bool?)>(("Mesh:ApplyToAllHttpClients", "maybe", false)),
        Gen.Const<(string, string?, bool?)>(("Mesh:PeakEwma:DecayTime", "forever", false)),
        Gen.Const<(string, string?, bool?)>(("Mesh:Resilience:MaxRetries", "-1", false)),
        Gen.Const<(string, string?, bool?)>(("Mesh:Resilience:MaxRetries", "3", true)),
        Gen.Const<(string, string?, bool?)>(("Mesh:Services:catalog:Endpoints:0:Unknown", "x", false)),
        Gen.Const<(string, string?, bool?)>(("Mesh:Resilience:MaxRetry", "3", false)),
        Gen.Const<(string, string?, bool?)>(("Mesh:Services:catalog:Endpoints", "http://10.0.0.9", null)),
        Gen.Const<(string, string?, bool?)>(("Mesh:Services:catalog:Endpoints:x:Address", "http://10.0.0.9", null)),
        Gen.Const<(string, string?, bool?)>(("Mesh:Services:catalog:Endpoints:99999999999:Address", "http://10.0.0.9", null)));

    private static readonly Gen<(Value Address, Value Weight, Value HostName, string? Zone)> GenEndpoint =
        Gen.Select(GenAddress, GenWeight, GenHostName, Gen.OneOf(Gen.Const((string?)null), Gen.Const((string?)"eu-1a"), Gen.Const((string?)"")));

    private static readonly Gen<GeneratedConfiguration> GenConfiguration =
        from services in Gen.Select(GenServiceName, GenEndpoint.Array[0, 4]).Array[1, 2]
        from extras in GenExtra.Array[0, 2]
        select Build(services, extras);

    private static GeneratedConfiguration Build((Value Name, (Value Address, Value Weight, Value HostName, string? Zone)[] Endpoints)[] services, (string Key, string? Value, bool? Valid)[] extras)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var counts = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        bool? valid = true;
        void And(bool? value) => valid = valid is false || value is false ? false : valid is null || value is null ? null : true;

        foreach (var (name, endpoints) in services)
        {
            // The second of two services with one name (any case) overwrites the first's keys.
            var prefix = $"Mesh:Services:{name.Text}:Endpoints";
            foreach (var key in settings.Keys.Where(k => k.StartsWith(prefix + ":", StringComparison.OrdinalIgnoreCase)).ToList())
            {
                settings.Remove(key);
            }

            var identities = new HashSet<string>(StringComparer.Ordinal);
            var serviceValid = endpoints.Length == 0 || name.Valid is true;
            for (var i = 0; i < endpoints.Length; i++)
            {
                var (address, weight, hostName, zone) = endpoints[i];
                var key = string.Create(CultureInfo.InvariantCulture, $"{prefix}:{i}");
                settings[key + ":Address"] = address.Text;
                serviceValid &= address.Valid is true && (address.Identity is null || identities.Add(address.Identity));
                if (weight.Text is not null)
                {
                    settings[key + ":Weight"] = weight.Text;
                    serviceValid &= weight.Valid is true;
                }

                if (hostName.Text is not null)
                {
                    settings[key + ":HostName"] = hostName.Text;
                    serviceValid &= hostName.Valid is true;
                }

                if (zone is not null)
                {
                    settings[key + ":Zone"] = zone;
                }
            }

            counts[name.Text!] = endpoints.Length;
            And(serviceValid);
        }

        if (services.Length == 2 && string.Equals(services[0].Name.Text, services[1].Name.Text, StringComparison.OrdinalIgnoreCase))
        {
            // Merged keys: the model keeps it simple.
            valid = null;
        }

        foreach (var (key, value, extraValid) in extras)
        {
            if (settings.ContainsKey(key) || (extraValid is null && !counts.ContainsKey("catalog")))
            {
                continue;
            }

            settings[key] = value;

            // An unknown key is refused (issue 12, item 10), naming it.
            And(extraValid);
        }

        return new GeneratedConfiguration(settings, valid, counts);
    }

    // ------------------------------------------------------------------ checks

    private sealed record StartOutcome(OptionsValidationException? Error);

    private static async Task<StartOutcome> StartAsync(GeneratedConfiguration configuration)
    {
        await using var host = MeshHost.Create(configuration.Settings);
        try
        {
            _ = host.Services.GetRequiredService<IOptions<MeshOptions>>().Value;
        }
        catch (OptionsValidationException ex)
        {
            Assert.True(configuration.Valid is not true, "the model says valid, validation refused: " + ex.Message);
            AssertNamesKeys(ex, configuration.Settings);
            return new StartOutcome(ex);
        }

        Assert.True(configuration.Valid is not false, "the model says invalid, validation accepted");
        await AssertWellFormedAsync(host, configuration);
        return new StartOutcome(null);
    }

    /// <summary>Every failure names a key of the configuration, or the section of one (a service, an endpoint).</summary>
    private static void AssertNamesKeys(OptionsValidationException error, Dictionary<string, string?> settings)
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var key in settings.Keys)
        {
            names.Add(key);
            var parts = key.Split(':');
            for (var n = 3; n < parts.Length; n++)
            {
                names.Add(string.Join(':', parts[..n]));
            }
        }

        Assert.NotEmpty(error.Failures);
        foreach (var failure in error.Failures)
        {
            Assert.True(names.Any(n => failure.Contains(n, StringComparison.OrdinalIgnoreCase)), $"'{failure}' names no key of the configuration");
        }
    }

    /// <summary>Every configured endpoint is discovered, and the balancer takes every one of them.</summary>
    private static async Task AssertWellFormedAsync(MeshHost host, GeneratedConfiguration configuration)
    {
        var options = host.Services.GetRequiredService<MeshOptionsChangeNotifier>().Current;
        var resolver = host.Services.GetRequiredService<ServiceEndpointResolver>();
        foreach (var (name, service) in options.Services)
        {
            if (service.Endpoints.Count == 0)
            {
                continue;
            }

            if (configuration.Valid is true && configuration.EndpointCounts.TryGetValue(name, out var expected))
            {
                Assert.Equal(expected, service.Endpoints.Count);
            }

            var source = await resolver.GetEndpointsAsync("http+https://" + name, CancellationToken.None);
            Assert.Equal(service.Endpoints.Count, source.Endpoints.Count);
            var ids = new HashSet<string>(StringComparer.Ordinal);
            foreach (var endpoint in source.Endpoints)
            {
                var entry = EndpointEntryFactory.Create(endpoint, id => new EndpointState(id), out var rejection);
                Assert.True(entry is not null, $"{endpoint.EndPoint}: {rejection}");
                Assert.True(ids.Add(entry.Id), $"duplicate id {entry.Id}");
                Assert.InRange(entry.Weight, MeshEndpointOptions.MinWeight, MeshEndpointOptions.MaxWeight);
                var rewritten = entry.Rewrite(new Uri("http://" + name + "/x?y=1"));
                Assert.Contains(rewritten.Scheme, new[] { Uri.UriSchemeHttp, Uri.UriSchemeHttps });
                Assert.InRange(rewritten.Port, 1, 65535);
                Assert.False(string.IsNullOrEmpty(rewritten.IdnHost));
                Assert.EndsWith("/x?y=1", rewritten.PathAndQuery, StringComparison.Ordinal);
            }
        }
    }

    private static Task Guarded(Func<Task> property) => Task.Run(property).WaitAsync(HangGuard);
}
