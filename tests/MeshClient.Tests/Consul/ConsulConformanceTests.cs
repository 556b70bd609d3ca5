using System.Net.Http.Json;
using System.Text.Json;
using MeshClient.Consul;
using MeshClient.ConsulServer;

namespace MeshClient.Tests.Consul;

/// <summary>
/// The real Consul answers in Fixtures/ parse with the library's source-generated JSON context, and the test server
/// answers with the same shape: field names, casing, JSON kinds, Go struct order, nothing invented.
/// </summary>
public sealed class ConsulConformanceTests
{
    private static readonly HashSet<string> EnterpriseOnly = new(StringComparer.OrdinalIgnoreCase) { "Namespace", "Partition" };

    /// <summary>Objects whose keys are data (maps), not field names.</summary>
    private static readonly HashSet<string> Maps = new(StringComparer.Ordinal)
    {
        "TaggedAddresses", "Meta", "NodeMeta", "ServiceMeta", "ServiceTaggedAddresses",
    };

    public static TheoryData<string> Fixtures() => [.. Directory.GetFiles(FixtureDirectory, "*.json").Select(f => Path.GetFileName(f))];

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void EveryFixture_ParsesWithTheLibraryJsonContext(string file)
    {
        var json = File.ReadAllText(Path.Combine(FixtureDirectory, file));
        var context = ConsulJsonContext.Default;
        switch (file)
        {
            case "docs-health-service.json" or "real-health-service-backend.consul-mock-api.json" or "real-health-service-grpc.capture.json":
                var health = JsonSerializer.Deserialize(json, context.ConsulHealthServiceEntryArray)!;
                Assert.NotEmpty(health);
                Assert.All(health, e =>
                {
                    Assert.False(string.IsNullOrEmpty(e.Service!.Id));
                    Assert.False(string.IsNullOrEmpty(e.Node!.Address));
                    Assert.NotNull(e.Checks);
                    Assert.All(e.Checks!, c => Assert.Contains(c.Status, new[] { "passing", "warning", "critical" }));
                });
                break;
            case "docs-catalog-service.json" or "real-catalog-service.capture.json":
                var catalog = JsonSerializer.Deserialize(json, context.ConsulCatalogServiceEntryArray)!;
                Assert.All(catalog, e => Assert.True(e.ServicePort > 0 && !string.IsNullOrEmpty(e.ServiceId) && !string.IsNullOrEmpty(e.Address)));
                break;
            case "docs-catalog-services.json":
                var services = JsonSerializer.Deserialize(json, context.DictionaryStringListString)!;
                Assert.Equal(["primary", "secondary"], services["postgresql"]);
                break;
            case "docs-agent-services.json":
                var agent = JsonSerializer.Deserialize(json, context.DictionaryStringConsulService)!;
                Assert.Equal(10, agent["redis"].Weights!.Passing);
                Assert.Equal(8000, agent["redis"].TaggedAddresses!["lan"].Port);
                break;
            case "docs-agent-service-register-payload.json":
                var registration = JsonSerializer.Deserialize(json, context.ConsulServiceRegistration)!;
                Assert.Equal("redis1", registration.Id);
                Assert.Equal("90m", registration.Check!.DeregisterCriticalServiceAfter);
                Assert.Equal(10, registration.Weights!.Passing);
                break;
            case "docs-agent-check-update-payload.json":
                Assert.Equal("passing", JsonSerializer.Deserialize(json, context.ConsulCheckUpdate)!.Status);
                break;
            default:
                Assert.Fail($"{file} is a fixture no test reads: add it to this switch.");
                break;
        }
    }

    [Fact]
    public async Task HealthService_HasTheShapeOfRealCaptures()
    {
        await using var consul = await ConsulTestServer.StartAsync();

        // As in the HashiCorp mock-api capture: no address, no meta, only the node's serfHealth.
        consul.Register(new ServiceDefinition { Id = "backend", Name = "backend", Port = 7000 });

        // As in the gRPC capture: a service address (the agent adds lan_ipv4/wan_ipv4) and a passing gRPC check.
        consul.Register(new ServiceDefinition
        {
            Id = "user-GRPC-8946",
            Name = "user-GRPC",
            Address = "172.40.0.2",
            Port = 19001,
            Checks = [new CheckDefinition { OtherType = "grpc", Interval = TimeSpan.FromSeconds(30), Timeout = TimeSpan.FromSeconds(30), Status = "passing" }],
        });
        var backend = await GetAsync(consul, "/v1/health/service/backend");
        var grpc = await GetAsync(consul, "/v1/health/service/user-GRPC");
        var realBackend = Fixture("real-health-service-backend.consul-mock-api.json");
        var realGrpc = Fixture("real-health-service-grpc.capture.json");

        AssertSameShape(realBackend, backend, allowedExtra: Shape(realGrpc));
        AssertSameShape(realGrpc, grpc, allowedExtra: Shape(realBackend));
        Assert.Equal(JsonValueKind.Null, backend[0].GetProperty("Service").GetProperty("Meta").ValueKind);
        Assert.False(backend[0].GetProperty("Service").TryGetProperty("TaggedAddresses", out _));
        Assert.Equal("30s", grpc[0].GetProperty("Checks")[1].GetProperty("Interval").GetString());

        // The hand-edited docs sample is a minimum shape (lowercase tagged-address keys, Enterprise fields aside).
        consul.Register(new ServiceDefinition
        {
            Id = "redis",
            Name = "redis",
            Tags = ["primary"],
            Address = "10.1.10.12",
            Port = 8000,
            Meta = new() { ["redis_version"] = "4.0" },
            WeightPassing = 10,
            WeightWarning = 1,
            TaggedAddresses = { ["lan"] = ("10.1.10.12", 8000), ["wan"] = ("198.18.1.2", 80) },
            Checks = [Services.Ttl()],
        });
        AssertMinimumShape(Fixture("docs-health-service.json"), await GetAsync(consul, "/v1/health/service/redis"));

        // And the library reads the server's answers like the real ones.
        foreach (var answer in new[] { backend, grpc })
        {
            Assert.NotEmpty(ConsulServiceState.Select(JsonSerializer.Deserialize(answer.GetRawText(), ConsulJsonContext.Default.ConsulHealthServiceEntryArray)!, new ConsulOptions()));
        }
    }

    [Fact]
    public async Task CatalogEndpoints_HaveTheShapeOfRealCapturesAndDocs()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(new ServiceDefinition { Id = "ks-allinone:myapp:3000", Name = "myapp", Port = 3002 });
        var myapp = await GetAsync(consul, "/v1/catalog/service/myapp");
        AssertSameShape(Fixture("real-catalog-service.capture.json"), myapp, allowedExtra: []);
        Assert.Equal(JsonValueKind.Object, myapp[0].GetProperty("ServiceMeta").ValueKind); // {} here, unlike health's null

        consul.Register(new ServiceDefinition
        {
            Id = "32a2a47f7992:nodea:5000",
            Name = "web",
            Tags = ["prod"],
            Address = "172.17.0.3",
            Port = 5000,
            Meta = new() { ["web_meta_value"] = "baz" },
            TaggedAddresses = { ["lan"] = ("172.17.0.3", 5000), ["wan"] = ("198.18.0.1", 512) },
        });
        AssertMinimumShape(Fixture("docs-catalog-service.json"), await GetAsync(consul, "/v1/catalog/service/web"), "ServiceProxy", "ServiceConnect");

        consul.Register(new ServiceDefinition { Id = "pg", Name = "postgresql", Tags = ["secondary", "primary"], Port = 5432 });
        var services = await GetAsync(consul, "/v1/catalog/services");
        Assert.Equal(Shape(Fixture("docs-catalog-services.json")).Keys.Order(), Shape(services).Keys.Order());
        Assert.Equal(["primary", "secondary"], services.GetProperty("postgresql").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(["consul", "myapp", "postgresql", "web"], services.EnumerateObject().Select(p => p.Name)); // Go sorts map keys

        var agent = await GetAsync(consul, "/v1/agent/services");
        AssertMinimumShape(Fixture("docs-agent-services.json").GetProperty("redis"), agent.GetProperty("32a2a47f7992:nodea:5000"));
        Assert.False(agent.TryGetProperty("consul", out _)); // the agent does not list the servers' own service
    }

    [Fact]
    public async Task RequestFixtures_AreAcceptedByTheServer()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        using var http = new HttpClient { BaseAddress = consul.Address };
        using var register = await http.PutAsync("/v1/agent/service/register", new StringContent(File.ReadAllText(Path.Combine(FixtureDirectory, "docs-agent-service-register-payload.json"))));
        Assert.Equal(200, (int)register.StatusCode);
        Assert.Equal(string.Empty, await register.Content.ReadAsStringAsync());
        var entry = (await GetAsync(consul, "/v1/health/service/redis"))[0];
        var check = entry.GetProperty("Checks")[1];
        Assert.Equal("service:redis1", check.GetProperty("CheckID").GetString());
        Assert.Equal("critical", check.GetProperty("Status").GetString()); // a script check starts critical and is never run here

        consul.Register(new ServiceDefinition { Id = "ttl", Name = "ttl", Checks = [new CheckDefinition { Ttl = TimeSpan.FromMinutes(1) }] });
        using var update = await http.PutAsync("/v1/agent/check/update/service:ttl", new StringContent(File.ReadAllText(Path.Combine(FixtureDirectory, "docs-agent-check-update-payload.json"))));
        Assert.Equal(200, (int)update.StatusCode);
        var ttl = (await GetAsync(consul, "/v1/health/service/ttl"))[0].GetProperty("Checks")[1];
        Assert.Equal("passing", ttl.GetProperty("Status").GetString());
        Assert.Equal("curl reported a failure:\n\n...", ttl.GetProperty("Output").GetString());
    }

    internal static string FixtureDirectory => Path.Combine(AppContext.BaseDirectory, "Consul", "Fixtures");

    private static JsonElement Fixture(string name) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureDirectory, name))).RootElement.Clone();

    private static async Task<JsonElement> GetAsync(ConsulTestServer consul, string path)
    {
        using var http = new HttpClient();
        return await http.GetFromJsonAsync<JsonElement>(new Uri(consul.Address, path));
    }

    /// <summary>
    /// Every field of the real answer is in the server's answer with the same kind, in the same relative order; and
    /// every field of the server's answer is in this real answer or in <paramref name="allowedExtra"/> (another capture).
    /// </summary>
    private static void AssertSameShape(JsonElement real, JsonElement server, Dictionary<string, JsonValueKind> allowedExtra)
    {
        var expected = Shape(real);
        var actual = Shape(server);
        foreach (var (path, kind) in expected)
        {
            Assert.True(actual.TryGetValue(path, out var actualKind), $"the server's answer lacks {path}");
            Assert.True(kind == actualKind, $"{path}: {actualKind} on the server, {kind} in the capture");
        }

        foreach (var (path, kind) in actual)
        {
            Assert.True(expected.ContainsKey(path) || allowedExtra.GetValueOrDefault(path) == kind, $"the server invents {path} ({kind})");
        }

        foreach (var (path, names) in Orders(real))
        {
            var serverNames = Orders(server).GetValueOrDefault(path) ?? [];
            Assert.Equal(names.Where(serverNames.Contains), serverNames.Where(names.Contains));
        }
    }

    /// <summary>The docs samples are hand-edited: their fields (case-insensitively, Enterprise aside) are a minimum.</summary>
    private static void AssertMinimumShape(JsonElement docs, JsonElement server, params string[] legacyObjects)
    {
        var actual = Shape(server).Keys.Select(k => k.ToUpperInvariant()).ToHashSet();
        foreach (var path in Shape(docs).Keys)
        {
            var segments = path.Split('.');
            if (segments.Any(EnterpriseOnly.Contains) || segments.Any(s => legacyObjects.Contains(s.TrimEnd('[', ']'))))
            {
                continue;
            }

            Assert.Contains(path.ToUpperInvariant(), actual);
        }
    }

    /// <summary>Path → kind of every field; array elements merge into "[]", map keys into "{*}".</summary>
    private static Dictionary<string, JsonValueKind> Shape(JsonElement element)
    {
        var shape = new Dictionary<string, JsonValueKind>(StringComparer.Ordinal);
        Walk(element, "$", isMap: false, shape, orders: null);
        return shape;
    }

    private static Dictionary<string, List<string>> Orders(JsonElement element)
    {
        var orders = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        Walk(element, "$", isMap: false, new Dictionary<string, JsonValueKind>(), orders);
        return orders;
    }

    private static void Walk(JsonElement element, string path, bool isMap, Dictionary<string, JsonValueKind> shape, Dictionary<string, List<string>>? orders)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    Walk(item, path + "[]", isMap: false, shape, orders);
                }

                break;
            case JsonValueKind.Object:
                var rootMap = path == "$" && element.EnumerateObject().Any() && element.EnumerateObject().All(p => p.Value.ValueKind is JsonValueKind.Array or JsonValueKind.Object)
                    && !element.TryGetProperty("ID", out _);
                foreach (var property in element.EnumerateObject())
                {
                    var map = isMap || rootMap;
                    var child = path + "." + (map ? "{*}" : property.Name);
                    if (!map && orders is not null)
                    {
                        if (!orders.TryGetValue(path, out var names))
                        {
                            orders[path] = names = [];
                        }

                        if (!names.Contains(property.Name))
                        {
                            names.Add(property.Name);
                        }
                    }

                    var kind = property.Value.ValueKind is JsonValueKind.True or JsonValueKind.False ? JsonValueKind.True : property.Value.ValueKind;
                    shape.TryAdd(child, kind);
                    Walk(property.Value, child, isMap: !map && Maps.Contains(property.Name), shape, orders);
                }

                break;
        }
    }
}
