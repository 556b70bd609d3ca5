using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Consul;
using MeshClient.Model;
using Microsoft.Extensions.ServiceDiscovery;
using Xunit.Abstractions;

namespace MeshClient.Tests.Consul;

/// <summary>
/// Properties of the reader of <c>/v1/health/service/{name}</c> answers (<see cref="ConsulClient.ReadHealthService"/>
/// then <see cref="ConsulServiceState.Select"/>), over mutations of the real answers in Fixtures/ and over generated
/// answers with hostile values: it never throws anything but a <see cref="ConsulException"/> of kind
/// <see cref="ConsulFailureKind.InvalidResponse"/> that says what is wrong, never hangs, and every endpoint it accepts
/// is well-formed.
/// </summary>
public sealed class ConsulReaderPropertyTests(ITestOutputHelper output)
{
    private const string Answer = "Consul at http://127.0.0.1:8500 answered GET /v1/health/service/web";

    // A hang fails the test instead of stalling the run; no case comes anywhere near it.
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(60);

    private static readonly string[] HealthFixtures =
        ["docs-health-service.json", "real-health-service-backend.consul-mock-api.json", "real-health-service-grpc.capture.json"];

    private static readonly Lazy<byte[][]> Fixtures = new(() =>
        [.. HealthFixtures.Select(f => File.ReadAllBytes(Path.Combine(ConsulConformanceTests.FixtureDirectory, f)))]);

    private static readonly ConsulOptions PassingOnly = new();
    private static readonly ConsulOptions WithWarning = new() { OnlyPassing = false };

    [Fact]
    public void TheFixtures_AreAccepted_AndGiveWellFormedEndpoints()
    {
        foreach (var fixture in Fixtures.Value)
        {
            var outcome = Read(fixture, WithWarning);
            Assert.Null(outcome.Error);
            Assert.NotEmpty(outcome.Instances!);
        }
    }

    [Fact]
    public Task TruncatedAtEveryOffset_IsRejectedWithAClearMessage() => Guarded(() =>
    {
        var cases = 0;
        foreach (var fixture in Fixtures.Value)
        {
            // Whitespace at the end aside, no proper prefix of a JSON array is a JSON value.
            var end = fixture.Length;
            while (end > 0 && fixture[end - 1] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t')
            {
                end--;
            }

            for (var length = 0; length < end; length++)
            {
                var outcome = Read(fixture.AsSpan(0, length).ToArray(), PassingOnly);
                var error = Assert.IsType<ConsulException>(outcome.Error);
                AssertClearRejection(error);
                cases++;
            }
        }

        output.WriteLine($"{cases} truncations rejected");
    });

    [Fact]
    public Task ByteFlips_AreRejectedOrGiveWellFormedEndpoints() => Guarded(() =>
    {
        var accepted = 0;
        var rejected = 0;
        var gen =
            from fixture in Gen.Int[0, HealthFixtures.Length - 1]
            from flips in Gen.Select(Gen.Int[0, int.MaxValue], Gen.Byte).Array[1, 8]
            select (fixture, flips);
        gen.Sample((fixture, flips) =>
        {
            var body = (byte[])Fixtures.Value[fixture].Clone();
            foreach (var (position, value) in flips)
            {
                body[position % body.Length] = value;
            }

            if (Check(body, WithWarning))
            {
                Interlocked.Increment(ref accepted);
            }
            else
            {
                Interlocked.Increment(ref rejected);
            }
        }, iter: 3000, threads: 1);
        output.WriteLine($"{accepted} flipped bodies accepted, {rejected} rejected");
        Assert.True(rejected > 0, "some flips must break the JSON");
    });

    [Fact]
    public Task EveryFieldOfEveryFixture_WithAValueOfEveryOtherType_IsRejectedOrWellFormed() => Guarded(() =>
    {
        JsonNode?[] replacements =
        [
            null, JsonValue.Create("text"), JsonValue.Create(""), JsonValue.Create(-1), JsonValue.Create(0), JsonValue.Create(65536),
            JsonValue.Create(true), new JsonArray(), new JsonArray(JsonValue.Create(1)), new JsonObject(),
            new JsonObject { ["Address"] = "::1" }, JsonValue.Create(1.5), JsonValue.Create(long.MaxValue), JsonValue.Create(decimal.MaxValue),
        ];
        var accepted = 0;
        var rejected = 0;
        foreach (var fixture in Fixtures.Value)
        {
            var paths = Paths(JsonNode.Parse(fixture)!).ToList();
            foreach (var path in paths)
            {
                foreach (var replacement in replacements)
                {
                    var root = JsonNode.Parse(fixture)!;
                    Replace(root, path, replacement?.DeepClone());
                    if (Check(Encoding.UTF8.GetBytes(root.ToJsonString()), WithWarning))
                    {
                        accepted++;
                    }
                    else
                    {
                        rejected++;
                    }
                }
            }
        }

        output.WriteLine($"{accepted} retyped bodies accepted, {rejected} rejected");

        // A string where a number belongs (and the reverse) is a type error, never a silent default.
        Assert.IsType<ConsulException>(Read("""[{"Service":{"ID":"a","Address":"10.0.0.1","Port":"80"}}]"""u8.ToArray(), PassingOnly).Error);
        Assert.IsType<ConsulException>(Read("""[{"Service":{"ID":"a","Address":10,"Port":80}}]"""u8.ToArray(), PassingOnly).Error);
        Assert.IsType<ConsulException>(Read("""[{"Service":{"ID":"a","Address":"10.0.0.1","Port":80,"Weights":{"Passing":"5"}}}]"""u8.ToArray(), PassingOnly).Error);
        Assert.True(rejected > 0 && accepted > 0);
    });

    [Theory]
    [InlineData("[", "]")]
    [InlineData("{\"a\":", "}")]
    [InlineData("[{\"Service\":{\"Meta\":{\"x\":", "}}}]")]
    public Task DeeplyNested_10000Levels_IsRejectedByTheDepthLimit(string open, string close) => Guarded(() =>
    {
        foreach (var depth in new[] { 65, 10_000 })
        {
            var text = new StringBuilder();
            text.Append('[');
            for (var i = 0; i < depth; i++)
            {
                text.Append(open);
            }

            for (var i = 0; i < depth; i++)
            {
                text.Append(close);
            }

            text.Append(']');
            var error = Assert.IsType<ConsulException>(Read(Encoding.UTF8.GetBytes(text.ToString()), PassingOnly).Error);
            AssertClearRejection(error);
            Assert.True(error.Message.Contains("depth", StringComparison.OrdinalIgnoreCase) || error.Message.Contains("could not be converted", StringComparison.Ordinal), error.Message);
        }
    });

    [Fact]
    public Task HugeStringsAndArrays_AreReadWithinBounds() => Guarded(() =>
    {
        // Larger than MaxResponseBytes is refused before parsing (ConsulClient.ReadBodyAsync, tested end to end);
        // what passes the limit is parsed in linear time, accepted or rejected, never a crash.
        var huge = new string('x', 1024 * 1024);
        var hugeString = Encoding.UTF8.GetBytes("[{\"Service\":{\"ID\":\"a\",\"Address\":\"10.0.0.1\",\"Port\":80,\"Meta\":{\"zone\":\"" + huge + "\"}}}]");
        Assert.Single(Read(hugeString, PassingOnly).Instances!);

        var hugeHost = Encoding.UTF8.GetBytes($$$"""[{"Service":{"ID":"a","Address":"{{{huge}}}","Port":80}}]""");
        var outcome = Read(hugeHost, PassingOnly);
        Assert.Empty(outcome.Instances!);
        Assert.Contains(outcome.Rejected, r => r.Contains("is not a host name", StringComparison.Ordinal) && r.Length < 300);

        var many = new StringBuilder("[");
        for (var i = 0; i < 20_000; i++)
        {
            many.Append(i == 0 ? string.Empty : ",").Append(string.Create(CultureInfo.InvariantCulture, $$$"""{"Service":{"ID":"i{{{i % 1000}}}","Address":"10.0.{{{i / 250 % 250}}}.{{{i % 250}}}","Port":{{{i % 70_000}}}""")).Append("}}");
        }

        Check(Encoding.UTF8.GetBytes(many.Append(']').ToString()), PassingOnly);
        Check(Encoding.UTF8.GetBytes("[" + string.Join(",", Enumerable.Repeat("[]", 20_000)) + "]"), PassingOnly);
    });

    [Fact]
    public Task NotAnArray_OrNull_OrInvalidUtf8_IsRejected() => Guarded(() =>
    {
        foreach (var body in new[] { "null", "{}", "\"text\"", "42", "", " ", "[null]x", "[] []", "\u00ff", "[{\"Service\":{\"ID\":\"\u00ff\"}}]" })
        {
            // Latin-1: "\u00ff" becomes the byte 0xFF, which is not UTF-8.
            var outcome = Read(Encoding.Latin1.GetBytes(body), PassingOnly);
            AssertClearRejection(Assert.IsType<ConsulException>(outcome.Error));
        }

        // An array of nulls and empty entries is an answer with no instances.
        Assert.Empty(Read("[null,{},{\"Service\":null},{\"Service\":{}}]"u8.ToArray(), PassingOnly).Instances!);
    });

    /// <summary>
    /// Generated answers, well-typed or not, with hostile ports, weights, addresses (IPv6 in every form), schemes and
    /// duplicate ids, checked against a model: a well-typed answer is accepted, and exactly the instances the model
    /// deems valid come out, each well-formed; an ill-typed one is rejected.
    /// </summary>
    [Fact]
    public Task GeneratedAnswers_MatchTheModel() => Guarded(() =>
    {
        var accepted = 0;
        var instances = 0;
        GenAnswer.Sample(entries =>
        {
            var json = "[" + string.Join(",", entries.Select(e => e.Json)) + "]";
            var outcome = Read(Encoding.UTF8.GetBytes(json), PassingOnly);
            if (entries.Any(e => !e.WellTyped))
            {
                AssertClearRejection(Assert.IsType<ConsulException>(outcome.Error));
                return;
            }

            Assert.Null(outcome.Error);
            accepted++;
            AssertWellFormed(outcome.Instances!);
            instances += outcome.Instances!.Length;

            // Ids from the model: every valid instance's id survives (qualified by node when shared), nothing else.
            var valid = entries.Where(e => e.Valid).ToList();
            var expectedIds = valid
                .Select(e => entries.Count(o => o.Id == e.Id) > 1 ? e.Node + "/" + e.Id : e.Id)
                .ToHashSet(StringComparer.Ordinal);
            Assert.Equal(expectedIds.Order(StringComparer.Ordinal), outcome.Instances!.Select(i => i.Id).Order(StringComparer.Ordinal));
            foreach (var instance in outcome.Instances!)
            {
                var source = valid.Where(e => instance.Id == e.Id || instance.Id == e.Node + "/" + e.Id).ToList();
                Assert.Contains(source, e => e.Scheme == instance.Address.Scheme && e.Port == (instance.Address.IsDefaultPort && e.Port == 0 ? 0 : instance.Address.Port));
            }

            // Every instance that is out for a reason other than its health is described.
            var invalid = entries.Count(e => !e.Valid && e.Weight > 0 && e.Id.Length > 0);
            Assert.True(outcome.Rejected.Count >= invalid, $"{outcome.Rejected.Count} rejections described, {invalid} invalid instances: {string.Join("; ", outcome.Rejected)}");
        }, iter: 1500, threads: 1, print: entries => "[" + string.Join(",", entries.Select(e => e.Json)) + "]");
        output.WriteLine($"{accepted} well-typed answers accepted, {instances} instances");
        Assert.True(instances > 0);
    });

    [Fact]
    public void NonHttpSchemes_FromTheSchemeMetaKey_AreRejectedWithAReason()
    {
        foreach (var scheme in new[] { "file", "ftp", "javascript", "data", "gopher", "", "http2", "HTTPS " })
        {
            var body = Encoding.UTF8.GetBytes("[{\"Service\":{\"ID\":\"a\",\"Address\":\"10.0.0.1\",\"Port\":80,\"Meta\":{\"scheme\":\"" + scheme + "\"}}}]");
            var outcome = Read(body, PassingOnly);
            Assert.Empty(outcome.Instances!);
            Assert.Equal($"instance 'a': Meta.scheme '{scheme}' is not http or https", Assert.Single(outcome.Rejected));
        }

        Assert.Equal("https", Assert.Single(Read("""[{"Service":{"ID":"a","Address":"10.0.0.1","Port":443,"Meta":{"scheme":"HTTPS"}}}]"""u8.ToArray(), PassingOnly).Instances!).Address.Scheme);
    }

    [Theory]
    [InlineData("::1", "http://[::1]:8080/")]
    [InlineData("[::1]", "http://[::1]:8080/")]
    [InlineData("::ffff:127.0.0.1", "http://[::ffff:127.0.0.1]:8080/")]
    [InlineData("0:0:0:0:0:0:0:1", "http://[::1]:8080/")]
    [InlineData("2001:DB8::A", "http://[2001:db8::a]:8080/")]
    [InlineData("[::1]:9000", null)]
    [InlineData("10.0.0.1:9000", null)]
    [InlineData("[::1", null)]
    [InlineData("::1]", null)]
    [InlineData("http://10.0.0.1", null)]
    [InlineData("a b", null)]
    public void Ipv6AddressesInEveryForm_GiveBracketedUris_AndHostPortFormsAreRejected(string address, string? expected)
    {
        var outcome = Read(Encoding.UTF8.GetBytes($$$"""[{"Service":{"ID":"a","Address":"{{{address}}}","Port":8080}}]"""), PassingOnly);
        if (expected is null)
        {
            Assert.Empty(outcome.Instances!);
            Assert.Contains("is not a host name or an IP address", Assert.Single(outcome.Rejected), StringComparison.Ordinal);
        }
        else
        {
            var instance = Assert.Single(outcome.Instances!);
            Assert.Equal(expected, instance.Address.AbsoluteUri);
            AssertWellFormed(outcome.Instances!);
        }
    }

    [Fact]
    public void Ipv6ZoneIds_AreKeptThroughToTheRequestUri()
    {
        // "%1" names an interface by index, as the OS knows it; IPAddress keeps it.
        var outcome = Read("""[{"Service":{"ID":"a","Address":"fe80::1%1","Port":8080}}]"""u8.ToArray(), PassingOnly);
        var instance = Assert.Single(outcome.Instances!);
        Assert.Equal("fe80::1%1", instance.Address.IdnHost);
        var entry = EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(instance.Address)), id => new EndpointState(id))!;
        var rewritten = entry.Rewrite(new Uri("http://web/items?x=1"));
        Assert.Equal("fe80::1%1", rewritten.IdnHost);
        Assert.Equal(8080, rewritten.Port);
        Assert.Equal("/items?x=1", rewritten.PathAndQuery);
    }

    [Fact]
    public void DuplicateIds_OnOneNode_KeepOneDeterministically_AndSayWhich()
    {
        const string A = """{"Node":{"Node":"n1"},"Service":{"ID":"web","Address":"10.0.0.2","Port":80}}""";
        const string B = """{"Node":{"Node":"n1"},"Service":{"ID":"web","Address":"10.0.0.1","Port":80}}""";
        var first = Read(Encoding.UTF8.GetBytes($"[{A},{B}]"), PassingOnly);
        var second = Read(Encoding.UTF8.GetBytes($"[{B},{A}]"), PassingOnly);
        Assert.Equal("http://10.0.0.1/", Assert.Single(first.Instances!).Address.AbsoluteUri);
        Assert.Equal(first.Instances, second.Instances);
        Assert.Contains("the id is not unique; kept http://10.0.0.1/, ignored http://10.0.0.2/", Assert.Single(first.Rejected), StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ generated answers

    private sealed record GenEntry(string Json, bool WellTyped, bool Valid, string Id, string Node, string Scheme, int Port, long Weight);

    private sealed record Field(string Json, bool WellTyped, long Value);

    private sealed record AddressCase(string Json, bool WellTyped, bool Valid);

    private static readonly Gen<Field> GenPort = Gen.Frequency(
        (6, Gen.Int[-2, 2].Select(p => new Field(p.ToString(CultureInfo.InvariantCulture), true, p))),
        (12, Gen.OneOf(Gen.Const(80), Gen.Const(65535), Gen.Const(65536), Gen.Const(-1), Gen.Const(int.MaxValue), Gen.Const(int.MinValue), Gen.Int, Gen.Int[1, 65535])
            .Select(p => new Field(p.ToString(CultureInfo.InvariantCulture), true, p))),
        (1, Gen.OneOf(Gen.Const("\"80\""), Gen.Const("2147483648"), Gen.Const("-2147483649"), Gen.Const("99999999999999999999"), Gen.Const("80.5"), Gen.Const("1e3"), Gen.Const("true"), Gen.Const("[]"), Gen.Const("{}"))
            .Select(p => new Field(p, false, 0))),
        (1, Gen.Const(new Field("null", false, 0))));

    private static readonly Gen<Field> GenWeight = Gen.Frequency(
        (10, Gen.OneOf(Gen.Const(1), Gen.Const(3), Gen.Const(0), Gen.Const(-1), Gen.Const(65535), Gen.Const(65536), Gen.Const(int.MaxValue), Gen.Const(int.MinValue))
            .Select(w => new Field(w.ToString(CultureInfo.InvariantCulture), true, w))),
        (1, Gen.OneOf(Gen.Const("\"1\""), Gen.Const("2147483648"), Gen.Const("1.5"), Gen.Const("null"), Gen.Const("[1]"))
            .Select(w => new Field(w, false, 0))));

    private static readonly Gen<AddressCase> GenAddress = Gen.Frequency(
        (8, Gen.OneOf(Gen.Const("10.0.0.1"), Gen.Const("127.0.0.1"), Gen.Const("::1"), Gen.Const("[::1]"), Gen.Const("fe80::1%1"), Gen.Const("::ffff:127.0.0.1"),
                Gen.Const("2001:db8::1"), Gen.Const("node-1.dc1.consul"), Gen.Const("localhost"), Gen.Const("a"))
            .Select(a => new AddressCase($"\"{a}\"", true, true))),
        (4, Gen.OneOf(Gen.Const("[::1]:8080"), Gen.Const("10.0.0.1:80"), Gen.Const("http://10.0.0.1"), Gen.Const("a b"), Gen.Const("a/b"), Gen.Const("[::1"),
                Gen.Const("::1]"), Gen.Const("a@b"), Gen.Const("<script>"), Gen.Const("a?b"), Gen.Const("a#b"), Gen.Const("\\u0000"))
            .Select(a => new AddressCase($"\"{a}\"", true, false))),

        // A lone surrogate is valid JSON but no string: System.Text.Json refuses it like a wrong type.
        (1, Gen.OneOf(Gen.Const("10"), Gen.Const("[]"), Gen.Const("{}"), Gen.Const("true"), Gen.Const("\"\\ud800\"")).Select(a => new AddressCase(a, false, false))));

    private static readonly Gen<(string Json, bool WellTyped, string? Scheme)> GenScheme = Gen.Frequency(
        (10, Gen.Const(((string Json, bool WellTyped, string? Scheme))(string.Empty, true, "http"))),
        (10, Gen.OneOf(Gen.Const("http"), Gen.Const("https"), Gen.Const("HTTPS"), Gen.Const("file"), Gen.Const("ftp"), Gen.Const("javascript"), Gen.Const("data"), Gen.Const("gopher"), Gen.Const(""))
            .Select(s => ($",\"Meta\":{{\"scheme\":\"{s}\"}}", true, s.ToLowerInvariant() is "http" or "https" ? (string?)s.ToLowerInvariant() : null))),
        (1, Gen.Const((",\"Meta\":{\"scheme\":1}", false, (string?)null))),
        (1, Gen.Const((",\"Meta\":[\"scheme\"]", false, (string?)null))));

    private static readonly Gen<GenEntry> GenEntryGen =
        from id in Gen.OneOf(Gen.Const("web-1"), Gen.Const("web-2"), Gen.Const("web"), Gen.Const(""))
        from node in Gen.OneOf(Gen.Const("n1"), Gen.Const("n2"), Gen.Const("n3"))
        from address in GenAddress
        from port in GenPort
        from weight in GenWeight
        from scheme in GenScheme
        from extra in Gen.Frequency((10, Gen.OneOf(Gen.Const(string.Empty), Gen.Const(",\"Tags\":[\"a\"]"), Gen.Const(",\"Unknown\":{\"deep\":[1,2,{}]}"))), (1, Gen.Const(",\"Tags\":\"a\"")))
        select Build(id, node, address, port, weight, scheme, extra);

    private static readonly Gen<GenEntry[]> GenAnswer = GenEntryGen.Array[0, 6];

    private static GenEntry Build(string id, string node, AddressCase address, Field port, Field weight, (string Json, bool WellTyped, string? Scheme) scheme, string extra)
    {
        var json = $$"""{"Node":{"Node":"{{node}}","Address":"10.9.9.9"},"Service":{"ID":"{{id}}","Address":{{address.Json}},"Port":{{port.Json}},"Weights":{"Passing":{{weight.Json}},"Warning":1}{{scheme.Json}}{{extra}}},"Checks":[{"Status":"passing"}]}""";
        var wellTyped = address.WellTyped && port.WellTyped && weight.WellTyped && scheme.WellTyped && extra != ",\"Tags\":\"a\"";

        // An escaped NUL is a valid JSON string but no host.
        var valid = wellTyped && id.Length > 0 && weight.Value > 0 && port.Value is >= 0 and <= 65535 && scheme.Scheme is not null && address.Valid;
        return new GenEntry(json, wellTyped, valid, id, node, scheme.Scheme ?? "?", (int)Math.Clamp(port.Value, int.MinValue, int.MaxValue), weight.Value);
    }

    // ------------------------------------------------------------------ the reader and its checks

    private sealed record Outcome(ConsulInstance[]? Instances, ConsulException? Error, List<string> Rejected);

    /// <summary>Reads like the watch does; any exception other than the documented one escapes and fails the property.</summary>
    private static Outcome Read(byte[] body, ConsulOptions options)
    {
        ConsulHealthServiceEntry[] entries;
        try
        {
            entries = ConsulClient.ReadHealthService(body, Answer);
        }
        catch (ConsulException ex)
        {
            return new Outcome(null, ex, []);
        }

        var rejected = new List<string>();
        return new Outcome(ConsulServiceState.Select(entries, options, rejected), null, rejected);
    }

    /// <summary>Reads and checks; returns whether the body was accepted.</summary>
    private static bool Check(byte[] body, ConsulOptions options)
    {
        var outcome = Read(body, options);
        if (outcome.Error is not null)
        {
            AssertClearRejection(outcome.Error);
            return false;
        }

        AssertWellFormed(outcome.Instances!);
        Assert.All(outcome.Rejected, r => Assert.StartsWith("instance '", r, StringComparison.Ordinal));
        return true;
    }

    private static void AssertClearRejection(ConsulException error)
    {
        Assert.Equal(ConsulFailureKind.InvalidResponse, error.Kind);
        Assert.StartsWith(Answer + " with ", error.Message, StringComparison.Ordinal);
        Assert.True(error.Message.Contains("malformed JSON: ", StringComparison.Ordinal) || error.Message.Contains("JSON null", StringComparison.Ordinal), error.Message);
        Assert.True(error.Message.Length < Answer.Length + 400, "the message stays short: " + error.Message.Length);
    }

    /// <summary>http or https, a host, a port from 1 to 65535, a weight from 1 to 65535, unique ids, and a request URI the balancer can build.</summary>
    internal static void AssertWellFormed(IReadOnlyList<ConsulInstance> instances)
    {
        Assert.Equal(instances.Count, instances.Select(i => i.Id).Distinct(StringComparer.Ordinal).Count());
        foreach (var instance in instances)
        {
            var address = instance.Address;
            Assert.True(address.IsAbsoluteUri);
            Assert.Contains(address.Scheme, new[] { Uri.UriSchemeHttp, Uri.UriSchemeHttps });
            Assert.False(string.IsNullOrEmpty(address.Host));
            Assert.InRange(address.Port, 1, 65535);
            Assert.Equal("/", address.AbsolutePath);
            Assert.Empty(address.Query);
            Assert.Empty(address.UserInfo);
            Assert.InRange(instance.Weight, MeshEndpointOptions.MinWeight, MeshEndpointOptions.MaxWeight);
            Assert.False(string.IsNullOrEmpty(instance.Id));

            var entry = EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(address)), id => new EndpointState(id), out var rejection);
            Assert.True(entry is not null, rejection);
            var rewritten = entry.Rewrite(new Uri("http://web/a/b?c=d"));
            Assert.Equal(address.IdnHost, rewritten.IdnHost);
            Assert.Equal(address.Port, rewritten.Port);
            Assert.Equal(address.Scheme, rewritten.Scheme);
            Assert.Equal("/a/b?c=d", rewritten.PathAndQuery);
        }
    }

    private static Task Guarded(Action property) => Task.Run(property).WaitAsync(HangGuard);

    private static IEnumerable<string[]> Paths(JsonNode node, string[]? prefix = null)
    {
        prefix ??= [];
        switch (node)
        {
            case JsonObject obj:
                foreach (var (name, child) in obj)
                {
                    string[] path = [.. prefix, name];
                    yield return path;
                    if (child is not null)
                    {
                        foreach (var inner in Paths(child, path))
                        {
                            yield return inner;
                        }
                    }
                }

                break;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                {
                    string[] path = [.. prefix, "#" + i.ToString(CultureInfo.InvariantCulture)];
                    yield return path;
                    if (array[i] is { } child)
                    {
                        foreach (var inner in Paths(child, path))
                        {
                            yield return inner;
                        }
                    }
                }

                break;
        }
    }

    private static void Replace(JsonNode root, string[] path, JsonNode? value)
    {
        var parent = root;
        for (var i = 0; i < path.Length - 1; i++)
        {
            parent = path[i][0] == '#' ? parent[int.Parse(path[i][1..], CultureInfo.InvariantCulture)]! : parent[path[i]]!;
        }

        var last = path[^1];
        if (last[0] == '#')
        {
            parent.AsArray()[int.Parse(last[1..], CultureInfo.InvariantCulture)] = value;
        }
        else
        {
            parent.AsObject()[last] = value;
        }
    }
}
