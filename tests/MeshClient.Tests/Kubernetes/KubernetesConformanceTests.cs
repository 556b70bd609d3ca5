using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using MeshClient.Kubernetes;
using MeshClient.KubernetesServer;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Tests.Kubernetes;

/// <summary>
/// The documented API shapes in Fixtures/ are read by the provider as the API server sends them, and the test
/// stand-in answers with the same shape: every documented field present, with the same JSON kind.
/// </summary>
public sealed class KubernetesConformanceTests
{
    private static readonly string FixtureDirectory = Path.Combine(AppContext.BaseDirectory, "Kubernetes", "Fixtures");

    private static JsonNode Fixture(string file) => JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureDirectory, file)))!;

    private static string[] WatchLines() => File.ReadAllLines(Path.Combine(FixtureDirectory, "docs-watch-events.jsonl")).Where(l => l.Length > 0).ToArray();

    [Fact]
    public void DocumentedSliceAndList_ParseWithTheLibraryContext_AndGiveTheEndpoint()
    {
        var slice = JsonSerializer.Deserialize(Fixture("docs-endpointslice.json").ToJsonString(), SourceGenerationContext.Default.V1EndpointSlice)!;
        var list = JsonSerializer.Deserialize(Fixture("docs-endpointslice-list.json").ToJsonString(), SourceGenerationContext.Default.V1EndpointSliceList)!;
        Assert.Equal("10245", list.Metadata.ResourceVersion);
        foreach (var parsed in new[] { slice, Assert.Single(list.Items) })
        {
            var instance = Assert.Single(KubernetesServiceState.Select([parsed], portName: null));
            Assert.Equal("http://10.1.2.3/", instance.Address.ToString());
            Assert.Equal("10.1.2.3:80", instance.Id); // no targetRef: the address is the id
            Assert.Equal("us-west2-a", instance.Zone);
        }
    }

    [Fact]
    public async Task DocumentedWatchEvents_AreReadAsTheProviderExpects()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        await using var mesh = KubernetesTestHost.Create(server);
        var client = mesh.Services.GetRequiredService<KubernetesApiClient>();
        var service = new KubernetesServiceName("default", "example");
        var lines = WatchLines();

        var added = client.ParseEvent(service, System.Text.Encoding.UTF8.GetBytes(lines[0]));
        Assert.Equal(("ADDED", "example-abc", "10596"), (added.Type, added.Slice?.Metadata.Name, added.ResourceVersion));
        var bookmark = client.ParseEvent(service, System.Text.Encoding.UTF8.GetBytes(lines[1]));
        Assert.Equal(("BOOKMARK", null, "12746"), (bookmark.Type, bookmark.Slice, bookmark.ResourceVersion));
        var gone = Assert.Throws<MeshClient.Kubernetes.KubernetesException>(() => client.ParseEvent(service, System.Text.Encoding.UTF8.GetBytes(lines[2])));
        Assert.Equal(KubernetesFailureKind.Gone, gone.Kind);
    }

    [Fact]
    public async Task StandIn_ListAndWatch_HaveTheDocumentedShapes()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        var documented = JsonSerializer.Deserialize(Fixture("docs-endpointslice.json").ToJsonString(), SourceGenerationContext.Default.V1EndpointSlice)!;
        server.Apply("default", documented);
        using var http = new HttpClient { BaseAddress = server.Address };

        var list = JsonNode.Parse(await http.GetStringAsync("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dexample"))!;
        AssertShape(Fixture("docs-endpointslice-list.json"), list, "$");

        // A watch from before the slice existed replays it (ADDED), then sends a BOOKMARK; from a compacted version, 410.
        using var watch = await http.GetAsync("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dexample&watch=true&resourceVersion=1&allowWatchBookmarks=true&timeoutSeconds=2", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("application/json", watch.Content.Headers.ContentType?.MediaType);
        var streamed = (await watch.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        var lines = WatchLines().Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal("ADDED", (string?)streamed[0]["type"]);
        AssertShape(lines[0], streamed[0], "$[ADDED]");
        var bookmark = streamed.First(e => (string?)e["type"] == "BOOKMARK");
        AssertShape(lines[1], bookmark, "$[BOOKMARK]");
        Assert.All(streamed, e => Assert.Equal(["type", "object"], e.AsObject().Select(p => p.Key)));

        server.Apply("default", documented);
        server.Compact();
        var expired = (await http.GetStringAsync("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dexample&watch=true&resourceVersion=1")).Trim();
        AssertShape(lines[2], JsonNode.Parse(expired)!, "$[ERROR]");
        Assert.Equal(410, (int?)JsonNode.Parse(expired)!["object"]!["code"]);
    }

    /// <summary>Every field of <paramref name="documented"/> is in <paramref name="actual"/>, with the same JSON kind (arrays: the first element).</summary>
    private static void AssertShape(JsonNode documented, JsonNode actual, string path)
    {
        Assert.True(documented.GetValueKind() == actual.GetValueKind(), $"{path}: documented {documented.GetValueKind()}, got {actual.GetValueKind()}");
        switch (documented)
        {
            case JsonObject expected:
                foreach (var (name, value) in expected)
                {
                    Assert.True(actual.AsObject().TryGetPropertyValue(name, out var got) && got is not null, $"{path}.{name} is missing");
                    if (value is not null)
                    {
                        AssertShape(value, got!, $"{path}.{name}");
                    }
                }

                break;
            case JsonArray expected when expected.Count > 0:
                Assert.True(actual.AsArray().Count > 0, $"{path} is empty");
                AssertShape(expected[0]!, actual.AsArray()[0]!, $"{path}[0]");
                break;
        }
    }
}
