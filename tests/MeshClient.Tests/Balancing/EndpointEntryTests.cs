using System.Net;
using MeshClient.Balancing;
using MeshClient.Discovery;
using MeshClient.Model;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Tests.Balancing;

public sealed class EndpointEntryTests
{
    [Theory]
    [InlineData("http://10.0.0.1:8080", "http://catalog/items/1?x=2", "http://10.0.0.1:8080/items/1?x=2")]
    [InlineData("https://10.0.0.1", "http://catalog/items", "https://10.0.0.1/items")]
    [InlineData("http://10.0.0.1:8080/base/", "http://catalog/items", "http://10.0.0.1:8080/base/items")]
    [InlineData("http://[::1]:8080", "http://catalog/a%20b", "http://[::1]:8080/a%20b")]
    [InlineData("http://host.internal:81", "https+http://catalog/", "http://host.internal:81/")]
    public void UriEndpoint_TakesSchemeHostPortAndPathBase(string endpoint, string request, string expected)
    {
        var entry = EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri(endpoint))), id => new EndpointState(id))!;
        Assert.Equal(expected, entry.Rewrite(new Uri(request)).AbsoluteUri);
    }

    [Fact]
    public void HostPortEndpoint_KeepsTheRequestScheme_FirstOfAPlusScheme()
    {
        var dns = EndpointEntryFactory.Create(ServiceEndpoint.Create(new DnsEndPoint("node-7", 9000)), id => new EndpointState(id))!;
        var ip = EndpointEntryFactory.Create(ServiceEndpoint.Create(new IPEndPoint(IPAddress.IPv6Loopback, 9001)), id => new EndpointState(id))!;

        Assert.Equal("https://node-7:9000/x", dns.Rewrite(new Uri("https+http://catalog/x")).AbsoluteUri);
        Assert.Equal("http://[::1]:9001/x", ip.Rewrite(new Uri("http://catalog/x")).AbsoluteUri);
    }

    [Fact]
    public void Rewrite_HandsOutItsLastUri_OnlyForTheSamePathQuerySchemeAndService()
    {
        var uri = EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri("http://10.0.0.1:8080/base"))), id => new EndpointState(id))!;
        var hostPort = EndpointEntryFactory.Create(ServiceEndpoint.Create(new DnsEndPoint("node-7", 9000)), id => new EndpointState(id))!;

        var first = uri.Rewrite(new Uri("http://catalog/items/1?x=2"), "catalog");
        Assert.Same(first, uri.Rewrite(new Uri("http://catalog/items/1?x=2"), "catalog")); // another request, same path
        Assert.Same(first, uri.Rewrite(new Uri("https://catalog/items/1?x=2"), "catalog")); // the address's scheme is used either way
        Assert.Equal("catalog", first.ServiceName);

        var other = uri.Rewrite(new Uri("http://catalog/items/1?x=3"), "catalog");
        Assert.NotSame(first, other);
        Assert.Equal("http://10.0.0.1:8080/base/items/1?x=3", other.AbsoluteUri);
        Assert.Equal("http://10.0.0.1:8080/base/items/1?x=2", first.AbsoluteUri); // a URI handed out never changes
        Assert.Equal("shop", uri.Rewrite(new Uri("http://shop/items/1?x=3"), "shop").ServiceName);

        var http = hostPort.Rewrite(new Uri("http://catalog/x"), "catalog");
        var https = hostPort.Rewrite(new Uri("https://catalog/x"), "catalog"); // a host:port endpoint keeps the request's scheme
        Assert.Equal("http://node-7:9000/x", http.AbsoluteUri);
        Assert.Equal("https://node-7:9000/x", https.AbsoluteUri);
        Assert.Same(https, hostPort.Rewrite(new Uri("https://catalog/x"), "catalog"));
    }

    [Fact]
    public void Features_GiveIdWeightZoneAndHostName()
    {
        var features = new FeatureCollection();
        features.Set<IMeshEndpointFeature>(new MeshEndpointFeature("catalog-7", 5, "eu-1a"));
        var entry = EndpointEntryFactory.Create(ServiceEndpoint.Create(new UriEndPoint(new Uri("http://10.0.0.7:80")), features), id => new EndpointState(id))!;

        Assert.Equal("catalog-7", entry.Id);
        Assert.Equal(5, entry.Weight);
        Assert.Equal("eu-1a", entry.Zone);
    }
}
