using System.Diagnostics.CodeAnalysis;
using System.Net;
using MeshClient.Balancing;
using MeshClient.Discovery;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// What any discovery provider hands the balancer is checked: an endpoint that cannot take an HTTP request is left
/// out with a reason, logged once; of endpoints sharing an id, the first keeps it and the others are logged once.
/// </summary>
public sealed class EndpointRejectionTests
{
    [Theory]
    [InlineData("file:///etc/passwd", "the scheme 'file' is not http or https")]
    [InlineData("ftp://10.0.0.1:21/", "the scheme 'ftp' is not http or https")]
    [InlineData("javascript:alert(1)", "the scheme 'javascript' is not http or https")]
    [InlineData("data:text/plain,hi", "the scheme 'data' is not http or https")]
    [InlineData("gopher://10.0.0.1/", "the scheme 'gopher' is not http or https")]
    public void UriEndpoint_WithANonHttpScheme_IsRejectedWithTheReason(string address, string reason)
    {
        var created = new List<string>();
        var entry = EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri(address))), id => { created.Add(id); return new EndpointState(id); }, out var rejection);
        Assert.Null(entry);
        Assert.Equal(reason, rejection);
        Assert.Empty(created); // no live state for an endpoint that is not used
    }

    [Fact]
    public void RelativeUri_BadDnsHost_AndWeightsOutOfRange_AreRejected()
    {
        Assert.Null(EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri("/x", UriKind.Relative))), id => new EndpointState(id), out var relative));
        Assert.Equal("the address is not an absolute http or https URI", relative);
        Assert.Null(EndpointEntryFactory.Create(ServiceEndpoint.Create(new DnsEndPoint("a b/c", 80)), id => new EndpointState(id), out var host));
        Assert.Equal("the host is not a host name or an IP address", host);
        foreach (var weight in new[] { 0, -1, 65536, int.MinValue })
        {
            var features = new FeatureCollection();
            features.Set<IMeshEndpointFeature>(new AnyWeight(weight));
            Assert.Null(EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri("http://10.0.0.1")), features), id => new EndpointState(id), out var rejection));
            Assert.Equal($"the weight {weight} is not between 1 and 65535", rejection);
        }
    }

    [Theory]
    [InlineData("http://[fe80::1%2]:8080/base", "http://catalog/a?b=c", "fe80::1%2", 8080, "/base/a?b=c")]
    [InlineData("https://[fe80::1%2]/", "http://catalog/a", "fe80::1%2", 443, "/a")]
    [InlineData("http://[::ffff:10.0.0.1]:81", "http://catalog/", "::ffff:10.0.0.1", 81, "/")]
    public void Ipv6Zones_AndMappedAddresses_SurviveTheRewrite(string endpoint, string request, string idnHost, int port, string pathAndQuery)
    {
        var entry = EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri(endpoint))), id => new EndpointState(id))!;
        var rewritten = entry.Rewrite(new Uri(request));
        Assert.Equal(idnHost, rewritten.IdnHost);
        Assert.Equal(port, rewritten.Port);
        Assert.Equal(pathAndQuery, rewritten.PathAndQuery);
    }

    [Fact]
    public void HostPortEndpoints_WithIpv6_AreBracketed_ZoneIncluded()
    {
        var scoped = IPAddress.Parse("fe80::1%3");
        var ip = EndpointEntryFactory.Create(ServiceEndpoint.Create(new IPEndPoint(scoped, 9000)), id => new EndpointState(id))!;
        Assert.Equal("fe80::1%3", ip.Rewrite(new Uri("http://catalog/x")).IdnHost);
        var dns = EndpointEntryFactory.Create(ServiceEndpoint.Create(new DnsEndPoint("::1", 9001)), id => new EndpointState(id))!;
        Assert.Equal("http://[::1]:9001/x", dns.Rewrite(new Uri("http://catalog/x")).AbsoluteUri);
    }

    [Fact]
    public async Task ServiceTable_UsesOnlyUsableEndpoints_AndLogsEachProblemOnce()
    {
        var logs = new FakeLogCollector();
        var stub = new StubEndpoints();
        await using var host = MeshHost.Create(new Dictionary<string, string?> { ["Mesh:LoadBalancer"] = "RoundRobin" }, services =>
        {
            services.AddLogging(b => b.AddProvider(new FakeLoggerProvider(logs)));
            services.AddSingleton<IServiceEndpointProviderFactory, OddProviderFactory>();
            services.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => stub);
        });
        var client = host.CreateClient();
        for (var i = 0; i < 20; i++)
        {
            (await client.GetAsync("http://odd/")).EnsureSuccessStatusCode();
        }

        // Only the two usable endpoints take traffic, each once per round.
        Assert.Equal(10, stub.Count("10.0.0.1"));
        Assert.Equal(10, stub.Count("10.0.0.2"));
        Assert.Equal(20, stub.Total);

        var table = host.Registry.GetTable("odd");
        await table.RefreshAsync();
        await table.RefreshAsync();
        var unsupported = logs.GetSnapshot().Where(r => r.Id.Id == 103).Select(r => r.Message).ToList();
        Assert.Equal(2, unsupported.Count);
        Assert.Contains(unsupported, m => m.Contains("ignored endpoint ftp://10.0.0.9/", StringComparison.Ordinal) && m.Contains("the scheme 'ftp' is not http or https", StringComparison.Ordinal));
        Assert.Contains(unsupported, m => m.Contains("the weight 0 is not between 1 and 65535", StringComparison.Ordinal));
        var duplicate = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 106);
        Assert.Equal(LogLevel.Warning, duplicate.Level);
        Assert.Contains("its id same is taken by an earlier endpoint", duplicate.Message, StringComparison.Ordinal);
    }

    private sealed class AnyWeight(int weight) : IMeshEndpointFeature
    {
        public string Id => "any";

        public int Weight => weight;

        public string? Zone => null;
    }

    /// <summary>A third-party provider that hands out what it should not.</summary>
    private sealed class OddProviderFactory : IServiceEndpointProviderFactory
    {
        public bool TryCreateProvider(ServiceEndpointQuery query, [NotNullWhen(true)] out IServiceEndpointProvider? provider)
        {
            provider = query.ServiceName == "odd" ? new Provider() : null;
            return provider is not null;
        }

        private sealed class Provider : IServiceEndpointProvider
        {
            public ValueTask PopulateAsync(IServiceEndpointBuilder endpoints, CancellationToken cancellationToken)
            {
                endpoints.Features.Set<IMeshServiceFeature>(new MeshServiceFeature("odd"));
                endpoints.Endpoints.Add(Endpoint("http://10.0.0.1", new MeshEndpointFeature("same", 1, null)));
                endpoints.Endpoints.Add(Endpoint("http://10.0.0.3", new MeshEndpointFeature("same", 1, null)));
                endpoints.Endpoints.Add(Endpoint("http://10.0.0.2", null));
                endpoints.Endpoints.Add(Endpoint("ftp://10.0.0.9:21", null));
                endpoints.Endpoints.Add(Endpoint("http://10.0.0.4", new AnyWeight(0)));
                return default;
            }

            public ValueTask DisposeAsync() => default;

            private static ServiceEndpoint Endpoint(string address, IMeshEndpointFeature? feature)
            {
                var features = new FeatureCollection();
                if (feature is not null)
                {
                    features.Set(feature);
                }

                return ServiceEndpoint.Create(new UriEndPoint(new Uri(address)), features);
            }
        }
    }
}
