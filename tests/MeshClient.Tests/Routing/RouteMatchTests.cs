using MeshClient.Configuration;
using MeshClient.Routing;

namespace MeshClient.Tests.Routing;

/// <summary>What a route's <c>Match</c> takes: path prefix element by element, exact path, method, exact header values.</summary>
public sealed class RouteMatchTests
{
    private static bool Matches(MeshRouteMatchOptions options, HttpMethod method, string uri, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(method, uri);
        foreach (var (name, value) in headers)
        {
            if (!request.Headers.TryAddWithoutValidation(name, value))
            {
                request.Content ??= new ByteArrayContent([]);
                request.Content.Headers.TryAddWithoutValidation(name, value);
            }
        }

        return RouteMatch.Create(options).Matches(request);
    }

    [Theory]
    [InlineData("/api", "/api", true)]
    [InlineData("/api", "/api/", true)]
    [InlineData("/api", "/api/items/42", true)]
    [InlineData("/api/", "/api/items", true)]
    [InlineData("/api/", "/api", true)]
    [InlineData("/api", "/apis", false)]
    [InlineData("/api", "/API/items", false)]
    [InlineData("/api", "/", false)]
    [InlineData("/", "/anything", true)]
    [InlineData("/a%20b", "/a%20b/c", true)]
    public void PathPrefix_MatchesElementByElement(string prefix, string path, bool expected) =>
        Assert.Equal(expected, Matches(new MeshRouteMatchOptions { PathPrefix = prefix }, HttpMethod.Get, "http://catalog" + path + "?q=1"));

    [Theory]
    [InlineData("/items", "/items", true)]
    [InlineData("/items", "/items/", false)]
    [InlineData("/items", "/items/42", false)]
    [InlineData("/items", "/Items", false)]
    public void Path_MatchesExactly_WithoutTheQuery(string path, string requestPath, bool expected) =>
        Assert.Equal(expected, Matches(new MeshRouteMatchOptions { Path = path }, HttpMethod.Get, "http://catalog" + requestPath + "?page=2"));

    [Fact]
    public void Method_IsComparedWithoutRegardToCase()
    {
        Assert.True(Matches(new MeshRouteMatchOptions { Method = "post" }, HttpMethod.Post, "http://catalog/"));
        Assert.False(Matches(new MeshRouteMatchOptions { Method = "POST" }, HttpMethod.Get, "http://catalog/"));
        Assert.True(Matches(new MeshRouteMatchOptions { Method = "PURGE" }, new HttpMethod("PURGE"), "http://catalog/"));
    }

    [Fact]
    public void Headers_AllMustBePresentWithExactlyTheirValue_NameWithoutRegardToCase()
    {
        var options = new MeshRouteMatchOptions { Headers = { ["x-canary"] = "always", ["x-tenant"] = "acme" } };
        Assert.True(Matches(options, HttpMethod.Get, "http://catalog/", ("X-Canary", "always"), ("x-tenant", "acme")));
        Assert.False(Matches(options, HttpMethod.Get, "http://catalog/", ("x-canary", "always")));
        Assert.False(Matches(options, HttpMethod.Get, "http://catalog/", ("x-canary", "Always"), ("x-tenant", "acme")));
        Assert.False(Matches(options, HttpMethod.Get, "http://catalog/", ("x-canary", "always "), ("x-tenant", "acme")));

        // A content header is a header of the request too.
        Assert.True(Matches(new MeshRouteMatchOptions { Headers = { ["content-type"] = "application/grpc" } }, HttpMethod.Post, "http://catalog/", ("Content-Type", "application/grpc")));
    }

    [Fact]
    public void EveryConditionMustHold_AndNoMatchTakesEverything()
    {
        var options = new MeshRouteMatchOptions { Method = "GET", PathPrefix = "/api", Headers = { ["x-canary"] = "always" } };
        Assert.True(Matches(options, HttpMethod.Get, "http://catalog/api/items", ("x-canary", "always")));
        Assert.False(Matches(options, HttpMethod.Put, "http://catalog/api/items", ("x-canary", "always")));
        Assert.False(Matches(options, HttpMethod.Get, "http://catalog/web", ("x-canary", "always")));
        Assert.True(Matches(new MeshRouteMatchOptions { Path = "/api/items", PathPrefix = "/api" }, HttpMethod.Get, "http://catalog/api/items"));
        Assert.False(Matches(new MeshRouteMatchOptions { Path = "/api/items", PathPrefix = "/api" }, HttpMethod.Get, "http://catalog/api/items/1"));
        Assert.Same(RouteMatch.All, RouteMatch.Create(null));
        Assert.Same(RouteMatch.All, RouteMatch.Create(new MeshRouteMatchOptions()));
        Assert.True(Matches(new MeshRouteMatchOptions(), HttpMethod.Delete, "http://catalog/whatever"));
    }

    [Fact]
    public void Describe_SaysWhatTheRouteTakes()
    {
        Assert.Null(RouteMatch.All.Describe());
        Assert.Equal("GET, path prefix /api, x-canary: always", RouteMatch.Create(new MeshRouteMatchOptions { Method = "get", PathPrefix = "/api/", Headers = { ["x-canary"] = "always" } }).Describe());
    }
}
