using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using MeshClient.Configuration;
using MeshClient.Consul;
using MeshClient.Discovery;
using MeshClient.Kubernetes;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;

namespace MeshClient.Tests.Configuration;

/// <summary>
/// Issue 12, item 10: a misspelt key under <c>Mesh</c> is refused at start-up and on reload, naming its full path,
/// and every key the README documents is accepted.
/// </summary>
public sealed partial class UnknownConfigurationKeyTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static Dictionary<string, string?> Valid() => new(StringComparer.OrdinalIgnoreCase)
    {
        ["Mesh:Services:catalog:Endpoints:0:Address"] = "http://127.0.0.1:5001",
        ["Mesh:Services:catalog:Endpoints:0:Weight"] = "3",
    };

    [Fact]
    public async Task UnknownKeys_FailAtStartUp_NamingEachFullPath()
    {
        var settings = Valid();
        settings["Mesh:Services:catalog:LoadBalancr"] = "RoundRobin";
        settings["Mesh:Resilience:MaxRetry"] = "5";
        settings["Mesh:Services:catalog:Endpoints:0:Wieght"] = "2";
        settings["Mesh:Services:catalog:Resilience:TotalTimeOut:Seconds"] = "3";
        settings["Mesh:LoadBalancer:Kind"] = "x";
        settings["Mesh:Colour"] = "blue";
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddMesh();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        output.WriteLine(error.Message);
        Assert.Contains("Mesh:Services:catalog:LoadBalancr is not a configuration key; did you mean LoadBalancer?", error.Failures);
        Assert.Contains("Mesh:Resilience:MaxRetry is not a configuration key; did you mean MaxRetries?", error.Failures);
        Assert.Contains("Mesh:Services:catalog:Endpoints:0:Wieght is not a configuration key; did you mean Weight?", error.Failures);
        Assert.Contains("Mesh:Services:catalog:Resilience:TotalTimeOut:Seconds is not a configuration key (this key takes a value, not a section).", error.Failures);
        Assert.Contains("Mesh:LoadBalancer:Kind is not a configuration key (this key takes a value, not a section).", error.Failures);
        Assert.Contains(error.Failures, f => f.StartsWith("Mesh:Colour is not a configuration key; the keys here are ", StringComparison.Ordinal));
        Assert.Equal(6, error.Failures.Count());
    }

    [Fact]
    public async Task UnknownKey_OnReload_IsRefusedWithEvent11_AndTheLastValidConfigurationKeepsServing()
    {
        await using var a = await TestBackend.StartAsync("a");
        var logs = new FakeLogCollector();
        var settings = MeshHost.ServiceSettings("catalog", "RoundRobin", (a, 1));
        await using var host = MeshHost.Create(settings, s => s.AddLogging(l => l.AddProvider(new FakeLoggerProvider(logs))));
        var client = host.CreateClient();
        (await client.GetAsync(new Uri("http://catalog/"))).EnsureSuccessStatusCode();

        host.Configuration.Replace(new Dictionary<string, string?>(settings, StringComparer.OrdinalIgnoreCase)
        {
            ["Mesh:Services:catalog:LoadBalancer"] = "Random",
            ["Mesh:Resilience:MaxRetry"] = "0",
        });

        var refusal = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 11);
        output.WriteLine(refusal.Message);
        Assert.Contains("Mesh:Resilience:MaxRetry is not a configuration key; did you mean MaxRetries?", refusal.Message, StringComparison.Ordinal);
        var current = host.Services.GetRequiredService<MeshOptionsChangeNotifier>().Current;
        Assert.Equal("RoundRobin", current.Services["catalog"].LoadBalancer); // the whole reload was refused
        (await client.GetAsync(new Uri("http://catalog/"))).EnsureSuccessStatusCode();
    }

    [Fact]
    public async Task ConsulKeys_AreCheckedWhenAddConsulIsCalled_AndTheSectionIsIgnoredWithWarning14WhenItIsNot()
    {
        var settings = Valid();
        settings["Mesh:Consul:Adress"] = "http://127.0.0.1:8500";
        settings["Mesh:Consul:Registration:HealthCheckPth"] = "/health";
        await using (var withConsul = MeshHost.Create(settings, s => s.AddMesh().AddConsul()))
        {
            var error = Assert.Throws<OptionsValidationException>(() => withConsul.Services.GetRequiredService<MeshOptionsChangeNotifier>());
            Assert.Contains("Mesh:Consul:Adress is not a configuration key; did you mean Address?", error.Failures);
            Assert.Contains("Mesh:Consul:Registration:HealthCheckPth is not a configuration key; did you mean HealthCheckPath?", error.Failures);
        }

        var logs = new FakeLogCollector();
        await using var withoutConsul = MeshHost.Create(settings, s => s.AddLogging(l => l.AddProvider(new FakeLoggerProvider(logs))));
        _ = withoutConsul.Services.GetRequiredService<MeshOptionsChangeNotifier>().Current;
        var warning = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 14);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Equal("Mesh configuration section Mesh:Consul is not read: AddConsul() was not called. It is ignored.", warning.Message);
    }

    [Fact]
    public async Task EveryKeyTheReadmeDocuments_IsAccepted()
    {
        using var pki = TestPki.Create();
        var client = pki.Client();
        var clientFile = pki.WritePem(client, key: true, out var keyFile);
        var keys = DocumentedKeys().ToList();
        output.WriteLine($"{keys.Count} documented keys:");
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var key in keys)
        {
            var value = ValueFor(key, pki.AuthorityFile, clientFile, keyFile!);
            Assert.True(value is not null, $"The test has no valid value for the documented key {key}.");
            if (value.Length > 0)
            {
                // Lists take an item, a dictionary an entry.
                var name = key[(key.LastIndexOf(':') + 1)..];
                settings[name switch { "AllowedNetworks" or "AllowedHostNames" or "Tags" => key + ":0", "Meta" => key + ":version", _ => key }] = value;
            }

            output.WriteLine($"  {key} = {value}");
        }

        // Every table: discovery and balancing, resilience (global and per service), security, Consul, Kubernetes.
        Assert.Contains("Mesh:Services:catalog:Endpoints:0:HostName", keys);
        Assert.Contains("Mesh:Services:catalog:Resilience:RetryBudgetWindow", keys);
        Assert.Contains("Mesh:Services:catalog:Tls:ServerName", keys);
        Assert.Contains("Mesh:KeepOtherResilienceHandlers", keys);
        Assert.Contains("Mesh:Consul:Registration:DeregisterCriticalServiceAfter", keys);
        Assert.Contains("Mesh:Kubernetes:Services:catalog:PortName", keys);
        Assert.Contains("Mesh:Services:catalog:Routes:0:Backends:0:Weight", keys);
        Assert.Contains("Mesh:Services:catalog:Routes:0:Match:Headers:x-canary", keys);
        Assert.Contains("Mesh:Services:catalog:Routes:0:Hedging:Percentile", keys);
        Assert.True(keys.Count > 90, $"only {keys.Count} keys found in the README's tables");

        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddMesh().AddConsul().AddKubernetes();
        using var host = builder.Build();
        var options = host.Services.GetRequiredService<MeshOptionsChangeNotifier>().Current; // validates, keys included
        _ = host.Services.GetRequiredService<IOptions<ConsulOptions>>().Value;
        Assert.Equal("http", host.Services.GetRequiredService<IOptions<MeshClient.Kubernetes.KubernetesOptions>>().Value.Services["catalog"].PortName);
        Assert.Equal(TimeSpan.FromSeconds(30), options.Services["catalog"].Resilience.TotalTimeout);
        Assert.True(options.KeepOtherResilienceHandlers);
        await Task.CompletedTask;
    }

    [Fact]
    public void TheSchema_HasEveryPropertyOfTheOptionsClasses_AndNothingElse()
    {
        AssertMatches(MeshConfigurationSchema.Mesh, typeof(MeshOptions), "Mesh");
        AssertMatches(MeshClient.Consul.ConsulConfigurationSchema.Keys, typeof(ConsulOptions), "Mesh:Consul");
        AssertMatches(MeshClient.Kubernetes.KubernetesConfigurationSchema.Keys, typeof(MeshClient.Kubernetes.KubernetesOptions), "Mesh:Kubernetes");
    }

    private static void AssertMatches(ConfigurationSchema schema, Type type, string path)
    {
        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0).ToList();
        Assert.Equal(properties.Select(p => p.Name).Order(StringComparer.Ordinal), schema.PropertyNames.Order(StringComparer.Ordinal));
        foreach (var property in properties)
        {
            var child = schema.Property(property.Name)!;
            var propertyType = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            if (propertyType.Namespace?.StartsWith("MeshClient", StringComparison.Ordinal) == true)
            {
                AssertMatches(child, propertyType, $"{path}:{property.Name}");
            }
            else if (propertyType.IsGenericType && propertyType.GetGenericArguments()[^1] is { Namespace: { } ns } item && ns.StartsWith("MeshClient", StringComparison.Ordinal))
            {
                var entries = child.GetType().GetField("_item", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(child) as ConfigurationSchema;
                Assert.NotNull(entries);
                AssertMatches(entries, item, $"{path}:{property.Name}:*");
            }
        }
    }

    /// <summary>Every key in the README's configuration tables, with <c>{name}</c> as catalog and <c>{i}</c> as 0.</summary>
    private static IEnumerable<string> DocumentedKeys()
    {
        var readme = File.ReadAllLines(FindReadme());
        string? prefix = null;
        var keys = new List<string>();
        var globalOnly = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in readme)
        {
            if (line.StartsWith('#') || line.StartsWith("| key |", StringComparison.Ordinal) || line.StartsWith("| `Mesh:Consul:` key", StringComparison.Ordinal) || line.StartsWith("| `Mesh:Kubernetes:` key", StringComparison.Ordinal))
            {
                prefix = line switch
                {
                    _ when line.StartsWith("### Resilience", StringComparison.Ordinal) => "Resilience:",
                    _ when line.StartsWith("| `Mesh:Consul:` key", StringComparison.Ordinal) => "Consul:",
                    _ when line.StartsWith("| `Mesh:Kubernetes:` key", StringComparison.Ordinal) => "Kubernetes:",
                    _ when line.StartsWith("| key |", StringComparison.Ordinal) => prefix ?? string.Empty,
                    _ when line.StartsWith("### Discovery", StringComparison.Ordinal) || line.StartsWith("## Security", StringComparison.Ordinal) => string.Empty,
                    _ => null,
                };
                continue;
            }

            if (prefix is null || !line.StartsWith("| `", StringComparison.Ordinal))
            {
                continue;
            }

            var cell = line.Split('|')[1];
            string? first = null;
            foreach (Match match in KeyPattern().Matches(cell))
            {
                var key = prefix + match.Groups[1].Value;
                var full = first is null || match.Groups[1].Value.Contains(':', StringComparison.Ordinal) ? key : first[..(first.LastIndexOf(':') + 1)] + match.Groups[1].Value;
                first ??= full;
                keys.Add(full);
                if (line.Contains("global only", StringComparison.Ordinal))
                {
                    globalOnly.Add(full);
                }
            }
        }

        // Wildcards (Services:{name}:Tls:*) stand for every key of their global table.
        var expanded = new List<string>();
        foreach (var key in keys)
        {
            var star = key.IndexOf(":*", StringComparison.Ordinal);
            if (star < 0)
            {
                expanded.Add(key);
                continue;
            }

            var section = key[..star];
            var last = section[(section.LastIndexOf(':') + 1)..] + ":";
            var table = keys.Where(k => !k.Contains('*', StringComparison.Ordinal) && !globalOnly.Contains(k)).ToList();
            var global = table.Where(k => k.StartsWith(last, StringComparison.Ordinal)).ToList();
            if (global.Count == 0)
            {
                // A section of the resilience table (Routes:{i}:Hedging:* stands for Resilience:Hedging:*).
                global = [.. table.Where(k => k.StartsWith("Resilience:" + last, StringComparison.Ordinal)).Select(k => k["Resilience:".Length..])];
            }

            Assert.True(global.Count > 0, $"The documented wildcard {key} stands for no documented key.");
            expanded.AddRange(global.Select(k => section[..^(last.Length - 1)] + k));
        }

        // The resilience table holds for every service too.
        expanded.AddRange(keys.Where(k => k.StartsWith("Resilience:", StringComparison.Ordinal)).Select(k => "Services:{name}:" + k));
        return expanded.Select(k => "Mesh:" + k.Replace("{name}", "catalog", StringComparison.Ordinal).Replace("{i}", "0", StringComparison.Ordinal)
            .Replace("{j}", "0", StringComparison.Ordinal).Replace("{header}", "x-canary", StringComparison.Ordinal)).Distinct().ToList();
    }

    private static string? ValueFor(string key, string caFile, string clientFile, string keyFile)
    {
        var name = key[(key.LastIndexOf(':') + 1)..];
        var consul = key.StartsWith("Mesh:Consul:", StringComparison.Ordinal);
        return name switch
        {
            "Address" when consul && key.Contains("Registration", StringComparison.Ordinal) => "10.0.0.9",
            "Address" when consul => "https://127.0.0.1:8501",
            "Address" => "http://127.0.0.1:5001",
            "Scheme" => "https",
            "ApplyToAllHttpClients" or "KeepOtherResilienceHandlers" or "OnlyPassing" or "TrustSystemCertificates" or "RetryNonIdempotent" => "true",
            "Enabled" or "Propagate" => "false",
            "LoadBalancer" => "RoundRobin",
            "Weight" or "WarningWeight" => "2",
            "Zone" => "eu-1a",
            "HostName" => "catalog.internal",
            "DecayTime" or "FailurePercentageWindow" or "RetryBudgetWindow" or "AttemptTimeout" => "00:00:10",
            "DefaultRtt" => "00:00:00.030",
            "FailurePenalty" or "UnreachableEjectionTime" or "RetryBaseDelay" or "ConnectTimeout" => "00:00:01",
            "Window" => "00:00:10",
            "Aggression" => "1.5",
            "SpillStartRatio" => "2.5",
            "SpillFullRatio" => "5",
            "BlackoutPeriod" => "00:00:05",
            "WeightExpirationPeriod" => "00:01:00",
            "WeightUpdatePeriod" => "00:00:02",
            "ErrorUtilizationPenalty" => "0.5",
            "MinWeightPercent" or "MaxEjectionPercent" or "RetryBudgetPercent" => "20",
            "ConsecutiveFailures" or "MaxRetries" => "3",
            "FailurePercentageThreshold" or "PanicThresholdPercent" => "50",
            "FailurePercentageMinimumRequests" or "RetryBudgetMinPerSecond" => "10",
            "BaseEjectionTime" or "TotalTimeout" or "Ttl" => "00:00:30",
            "MaxEjectionTime" or "Wait" or "WatchTimeout" => "00:05:00",
            "ClusterDomain" => "cluster.local",
            "KubeConfigPath" => clientFile,
            "Context" => "dev",
            "PortName" => "http",
            "RetryMaxDelay" => "00:00:02",
            "ReloadInterval" or "WatchIdleTimeout" => "00:02:00",
            "CaCertificateFile" => caFile,
            "ClientCertificateFile" => clientFile,
            "ClientKeyFile" => keyFile,
            "ServerName" => "catalog.mesh.internal",
            "AllowedNetworks" => "10.0.0.0/8",
            "AllowedHostNames" => "*.internal",
            "Token" => "secret-token",
            "Datacenter" or "Namespace" or "Partition" => "dc1",
            "Tags" => "v2",
            "SchemeMetaKey" => "scheme",
            "ZoneMetaKey" => "zone",
            "RequestTimeout" or "CheckInterval" => "00:00:10",
            "CheckTimeout" => "00:00:05",
            "MaxResponseBytes" => (1024 * 1024).ToString(CultureInfo.InvariantCulture),
            "ServiceName" => "orders",
            "ServiceId" => "orders-1",
            "Port" => "8080",
            "Meta" => "v2",
            "HealthCheckPath" => "/health",
            "DeregisterCriticalServiceAfter" => "00:10:00",
            "Delay" => "00:00:00.050",
            "MaxAttempts" => "3",
            "Percentile" => "95",
            "MinDelay" => "00:00:00.002",
            "MaxDelay" => "00:00:00.500",
            "BudgetPercent" => "10",
            "BudgetMinPerSecond" => "1",
            "Name" => "canary",
            "PathPrefix" => "/api",
            "Path" => "/api/items",
            "Method" => "GET",
            "x-canary" => "always",
            "Service" => "catalog-v2",
            "Timeout" => "00:00:02",
            _ => null,
        };
    }

    private static string FindReadme()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var readme = Path.Combine(directory.FullName, "README.md");
            if (File.Exists(readme) && File.Exists(Path.Combine(directory.FullName, "MeshClient.sln")))
            {
                return readme;
            }
        }

        throw new FileNotFoundException("README.md of the repository");
    }

    [GeneratedRegex(@"`([A-Za-z][A-Za-z:{}*]*)`")]
    private static partial Regex KeyPattern();
}
