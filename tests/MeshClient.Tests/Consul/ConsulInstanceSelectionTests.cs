using System.Text.Json;
using MeshClient.Consul;

namespace MeshClient.Tests.Consul;

/// <summary>How Consul's health answer becomes endpoints: health, weights, address fallback, tolerance of odd JSON.</summary>
public sealed class ConsulInstanceSelectionTests
{
    private static readonly ConsulOptions Defaults = new();

    [Fact]
    public void DocsSample_GivesTheServiceAddressAndThePassingWeight()
    {
        var instance = Assert.Single(ConsulServiceState.Select(Fixture("docs-health-service.json"), Defaults));
        Assert.Equal(new ConsulInstance("redis", new Uri("http://10.1.10.12:8000"), 10, null), instance);
    }

    [Fact]
    public void RealCapture_WithAnEmptyServiceAddressAndMetaNull_FallsBackToTheNodeAddress()
    {
        var instances = ConsulServiceState.Select(Fixture("real-health-service-backend.consul-mock-api.json"), Defaults);
        Assert.Equal(
            [new ConsulInstance("backend", new Uri("http://172.17.0.2:7000"), 1, null), new ConsulInstance("backend-v2", new Uri("http://172.17.0.2:7001"), 1, null)],
            instances);
    }

    [Fact]
    public void RealCapture_WithCapitalisedTaggedAddresses_GivesTheServiceAddress()
    {
        var instance = Assert.Single(ConsulServiceState.Select(Fixture("real-health-service-grpc.capture.json"), Defaults));
        Assert.Equal(new ConsulInstance("user-GRPC-8946", new Uri("http://172.40.0.2:19001"), 1, null), instance);
    }

    [Fact]
    public void OddButValidJson_IsTolerated_UnknownFieldsMissingPortLowercaseKeysHugeWeight()
    {
        const string Json = """
            [{"Node":{"Node":"n1","Address":"10.0.0.1","Meta":null,"Extra":{"deep":[1,2,{"x":null}]}},
              "Service":{"ID":"x","Service":"x","Tags":null,"Address":"","Meta":null,
                         "TaggedAddresses":{"lan":{"address":"10.0.0.2","port":1},"wan":{"Address":"10.0.0.3","Port":2}},
                         "Weights":{"Passing":70000,"Warning":1},"ProxyDestination":"","Proxy":{}},
              "Checks":null}]
            """;
        var entries = Parse(Json);
        var instance = Assert.Single(ConsulServiceState.Select(entries, Defaults));
        Assert.Equal(new ConsulInstance("x", new Uri("http://10.0.0.1"), 65535, null), instance);
        Assert.Equal("10.0.0.2", entries[0].Service!.TaggedAddresses!["lan"].Address);
        Assert.Equal(2, entries[0].Service!.TaggedAddresses!["wan"].Port);
    }

    [Theory]
    [InlineData("passing", true, 5)]
    [InlineData("warning", true, 0)]
    [InlineData("warning", false, 3)]
    [InlineData("critical", false, 0)]
    [InlineData("maintenance", false, 0)]
    [InlineData("unknown-status", false, 0)]
    public void Health_DecidesDiscoveryAndWeight(string status, bool onlyPassing, int expectedWeight)
    {
        var checkId = status == "maintenance" ? "_service_maintenance:x" : "service:x";
        var wireStatus = status == "maintenance" ? "critical" : status;
        var json = $$$"""
            [{"Node":{"Node":"n1","Address":"10.0.0.1"},
              "Service":{"ID":"x","Service":"x","Port":80,"Weights":{"Passing":5,"Warning":3}},
              "Checks":[{"CheckID":"serfHealth","Status":"passing"},{"CheckID":"{{{checkId}}}","Status":"{{{wireStatus}}}"}]}]
            """;
        var instances = ConsulServiceState.Select(Parse(json), new ConsulOptions { OnlyPassing = onlyPassing });
        Assert.Equal(expectedWeight, instances.SingleOrDefault()?.Weight ?? 0);
    }

    [Fact]
    public void SchemeAndZone_ComeFromMeta_AndIpv6IsBracketed_AndGarbageAddressesAreSkipped()
    {
        const string Json = """
            [{"Node":{"Node":"n1","Address":"10.0.0.1","Meta":{"zone":"node-zone"}},"Service":{"ID":"a","Service":"s","Port":443,"Meta":{"scheme":"HTTPS","zone":"eu-1a"}},"Checks":[]},
             {"Node":{"Node":"n1","Address":"10.0.0.1","Meta":{"zone":"node-zone"}},"Service":{"ID":"b","Service":"s","Address":"fd00::1","Port":8080},"Checks":[]},
             {"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"c","Service":"s","Address":"evil.example/path?x=1","Port":80},"Checks":[]},
             {"Node":{"Node":"n1","Address":""},"Service":{"ID":"d","Service":"s","Port":80},"Checks":[]},
             {"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"","Service":"s","Port":80},"Checks":[]},
             {"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"e","Service":"s","Port":80,"Weights":{"Passing":0,"Warning":0}},"Checks":[]}]
            """;
        var instances = ConsulServiceState.Select(Parse(Json), Defaults);
        Assert.Equal(
            [new ConsulInstance("a", new Uri("https://10.0.0.1:443"), 1, "eu-1a"), new ConsulInstance("b", new Uri("http://[fd00::1]:8080"), 1, "node-zone")],
            instances);

        var https = ConsulServiceState.Select(Parse(Json), new ConsulOptions { Scheme = "https", ZoneMetaKey = "" });
        Assert.Equal("https://[fd00::1]:8080/", https[1].Address.ToString());
        Assert.Null(https[0].Zone);
    }

    [Fact]
    public void Zone_ComesFromServiceMeta_ThenServiceLocality_ThenNodeMeta_ThenNodeLocality()
    {
        // Consul 1.17+ writes Locality {Region, Zone} on nodes (the agent's "locality") and services; the meta key
        // (ZoneMetaKey, "zone") is the documented MeshClient convention and wins at each level.
        const string Json = """
            [{"Node":{"Node":"n1","Address":"10.0.0.1","Meta":{"zone":"node-meta"},"Locality":{"Region":"eu","Zone":"node-locality"}},"Service":{"ID":"a","Service":"s","Port":80,"Meta":{"zone":"service-meta"},"Locality":{"Region":"eu","Zone":"service-locality"}},"Checks":[]},
             {"Node":{"Node":"n1","Address":"10.0.0.1","Meta":{"zone":"node-meta"},"Locality":{"Region":"eu","Zone":"node-locality"}},"Service":{"ID":"b","Service":"s","Port":81,"Meta":null,"Locality":{"Region":"eu","Zone":"service-locality"}},"Checks":[]},
             {"Node":{"Node":"n1","Address":"10.0.0.1","Meta":{"zone":"node-meta"},"Locality":{"Region":"eu","Zone":"node-locality"}},"Service":{"ID":"c","Service":"s","Port":82},"Checks":[]},
             {"Node":{"Node":"n1","Address":"10.0.0.1","Meta":{"consul-network-segment":""},"Locality":{"Region":"eu","Zone":"node-locality"}},"Service":{"ID":"d","Service":"s","Port":83,"Locality":{"Region":"eu","Zone":""}},"Checks":[]},
             {"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"e","Service":"s","Port":84},"Checks":[]}]
            """;
        var zones = ConsulServiceState.Select(Parse(Json), Defaults).Select(i => i.Zone).ToArray();
        Assert.Equal(new[] { "service-meta", "service-locality", "node-meta", "node-locality", null }, zones);

        // An empty ZoneMetaKey turns zones off, Locality included.
        Assert.All(ConsulServiceState.Select(Parse(Json), new ConsulOptions { ZoneMetaKey = "" }), i => Assert.Null(i.Zone));
    }

    [Theory]
    [InlineData("[{\"Node\":")]
    [InlineData("{\"not\":\"an array\"}")]
    [InlineData("[{\"Service\":{\"Port\":\"eighty\"}}]")]
    [InlineData("[{\"Service\":{\"Meta\":{\"k\":1}}}]")]
    public void MalformedJson_IsRejected(string json) =>
        Assert.ThrowsAny<JsonException>(() => Parse(json));

    internal static ConsulHealthServiceEntry[] Fixture(string name) =>
        Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Consul", "Fixtures", name)));

    private static ConsulHealthServiceEntry[] Parse(string json) =>
        JsonSerializer.Deserialize(json, ConsulJsonContext.Default.ConsulHealthServiceEntryArray)!;
}
