using System.Net;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Text.Encodings.Web;
using System.Text.Json;
using MeshClient.AspNetCore.Tests.Infrastructure;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshClient.AspNetCore.Tests.Status;

public sealed class MeshStatusJsonTests
{
    [Fact]
    public async Task Json_ShowsEveryEndpointWithItsStateLoadAndLastMinute()
    {
        await using var app = await MeshApp.StartAsync(3, map: a => a.MapMeshStatus("/mesh"));
        app.Backends[2].Failing = true;
        await app.CallAsync(60);

        using var http = new HttpClient { BaseAddress = app.Address };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/mesh");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = json.RootElement;
        Assert.Equal(1, root.GetProperty("version").GetInt32());
        Assert.True(root.GetProperty("generatedAt").TryGetDateTimeOffset(out _));

        var service = Assert.Single(root.GetProperty("services").EnumerateArray());
        Assert.Equal("catalog", service.GetProperty("name").GetString());
        Assert.Equal("RoundRobin", service.GetProperty("loadBalancer").GetString());
        Assert.False(service.GetProperty("panic").GetBoolean());
        var discovery = service.GetProperty("discovery");
        Assert.Equal("Mesh configuration (Mesh:Services)", discovery.GetProperty("source").GetString());
        Assert.True(discovery.GetProperty("lastUpdated").TryGetDateTimeOffset(out var updated));
        Assert.InRange(updated, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddSeconds(1));
        Assert.Equal(JsonValueKind.Null, discovery.GetProperty("error").ValueKind);

        Assert.Equal(JsonValueKind.Null, service.GetProperty("hedging").ValueKind); // it does not hedge

        var budget = service.GetProperty("retryBudget");
        Assert.Equal(60, budget.GetProperty("requests").GetInt32());
        Assert.Equal(0, budget.GetProperty("retries").GetInt32()); // MaxRetries = 0
        Assert.True(budget.GetProperty("allowed").GetDouble() > 0);
        Assert.True(budget.GetProperty("windowSeconds").GetDouble() > 0);

        var endpoints = service.GetProperty("endpoints").EnumerateArray().ToList();
        Assert.Equal(app.Backends.Select(b => b.Address.ToString().TrimEnd('/')), endpoints.Select(e => e.GetProperty("address").GetString()!.TrimEnd('/')));
        Assert.Equal([1, 2, 3], endpoints.Select(e => e.GetProperty("weight").GetInt32()));
        Assert.Equal([1.0, 2.0, 3.0], endpoints.Select(e => e.GetProperty("effectiveWeight").GetDouble()));
        Assert.All(endpoints, e => Assert.Equal(JsonValueKind.Null, e.GetProperty("slowStartPercent").ValueKind));
        Assert.Equal(["healthy", "healthy", "ejected"], endpoints.Select(e => e.GetProperty("state").GetString()));
        Assert.Equal(JsonValueKind.Null, endpoints[0].GetProperty("ejectionSecondsLeft").ValueKind);
        Assert.InRange(endpoints[2].GetProperty("ejectionSecondsLeft").GetDouble(), 20, 30); // BaseEjectionTime 30 s
        Assert.All(endpoints, e => Assert.True(e.GetProperty("latencyMs").GetDouble() > 0));
        Assert.All(endpoints, e => Assert.Equal(0, e.GetProperty("inFlight").GetInt32()));
        Assert.All(endpoints, e => Assert.Equal(JsonValueKind.Null, e.GetProperty("zone").ValueKind));

        // Every call made one attempt, counted on its endpoint; the failing one failed 5 times in a row, then was out.
        Assert.Equal(60, endpoints.Sum(e => e.GetProperty("requestsLastMinute").GetInt32()));
        Assert.Equal([0, 0, 5], endpoints.Select(e => e.GetProperty("failuresLastMinute").GetInt32()));
        Assert.Equal(5, endpoints[2].GetProperty("requestsLastMinute").GetInt32());
        Assert.Equal(endpoints.Select(e => (long)e.GetProperty("requestsLastMinute").GetInt32()), endpoints.Select(e => e.GetProperty("attempts").GetInt64()));
    }

    [Fact]
    public async Task Json_ShowsTheCallersZone_EachServicesZoneRouting_AndEachEndpointsLocality()
    {
        await using var app = await MeshApp.StartAsync(3, ZoneSettings, a => a.MapMeshStatus("/mesh"));
        await app.CallAsync(30);

        // The zones' means are folded in by a pick every 100 ms: call until one has (bounded).
        using var http = new HttpClient { BaseAddress = app.Address };
        var json = JsonDocument.Parse(await http.GetStringAsync("/mesh?format=json"));
        for (var i = 0; i < 100 && json.RootElement.GetProperty("services")[0].GetProperty("zoneRouting").GetProperty("localLatencyMs").ValueKind == JsonValueKind.Null; i++)
        {
            json.Dispose();
            await Task.Delay(20);
            await app.CallAsync(1);
            json = JsonDocument.Parse(await http.GetStringAsync("/mesh?format=json"));
        }

        using var document = json;
        var root = document.RootElement;
        Assert.Equal("zone-a", root.GetProperty("zone").GetString());
        var service = Assert.Single(root.GetProperty("services").EnumerateArray());
        var zones = service.GetProperty("zoneRouting");
        Assert.Equal("zone-a", zones.GetProperty("zone").GetString());
        Assert.True(zones.GetProperty("active").GetBoolean());
        Assert.Equal(0, zones.GetProperty("spill").GetDouble());
        Assert.Equal(1, zones.GetProperty("localEndpoints").GetInt32());
        Assert.Equal(1, zones.GetProperty("healthyLocalEndpoints").GetInt32());
        Assert.True(zones.GetProperty("localShare").GetDouble() > 0.5);
        Assert.True(zones.GetProperty("localLatencyMs").GetDouble() > 0);
        Assert.Equal(["local", "remote", "remote"], service.GetProperty("endpoints").EnumerateArray().Select(e => e.GetProperty("locality").GetString()));
        Assert.Equal(["zone-a", "zone-b", "zone-b"], service.GetProperty("endpoints").EnumerateArray().Select(e => e.GetProperty("zone").GetString()));

        // Without a zone: no zone routing, no locality (the fields are there, null).
        await using var plain = await MeshApp.StartAsync(1, map: a => a.MapMeshStatus("/mesh"));
        await plain.CallAsync(1);
        using var plainHttp = new HttpClient { BaseAddress = plain.Address };
        using var plainJson = JsonDocument.Parse(await plainHttp.GetStringAsync("/mesh?format=json"));
        Assert.Equal(JsonValueKind.Null, plainJson.RootElement.GetProperty("zone").ValueKind);
        var plainService = Assert.Single(plainJson.RootElement.GetProperty("services").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, plainService.GetProperty("zoneRouting").ValueKind);
        Assert.Equal(JsonValueKind.Null, Assert.Single(plainService.GetProperty("endpoints").EnumerateArray()).GetProperty("locality").ValueKind);
    }

    [Fact]
    public async Task Json_ShowsAHedgingServicesDelayInForce_AndItsHedgeBudget()
    {
        await using var app = await MeshApp.StartAsync(3, services => services.PostConfigure<MeshClient.Configuration.MeshOptions>(o =>
        {
            o.Resilience.Hedging.Enabled = true;
            o.Resilience.Hedging.Delay = TimeSpan.FromSeconds(10); // longer than any call here takes: no hedge is sent
            o.Resilience.Hedging.MaxAttempts = 3;
        }), a => a.MapMeshStatus("/mesh"));
        await app.CallAsync(20);

        using var http = new HttpClient { BaseAddress = app.Address };
        using var json = JsonDocument.Parse(await http.GetStringAsync("/mesh?format=json"));
        var hedging = Assert.Single(json.RootElement.GetProperty("services").EnumerateArray()).GetProperty("hedging");
        Assert.Equal(10_000, hedging.GetProperty("delayMs").GetDouble());
        Assert.Equal(JsonValueKind.Null, hedging.GetProperty("percentile").ValueKind); // a fixed delay
        Assert.Equal(3, hedging.GetProperty("maxAttempts").GetInt32());
        var budget = hedging.GetProperty("budget");
        Assert.Equal(10, budget.GetProperty("windowSeconds").GetDouble());
        Assert.InRange(budget.GetProperty("requests").GetInt32(), 19, 20); // a service's first call, which waits for discovery, is not a hedgeable try
        Assert.Equal(0, budget.GetProperty("retries").GetInt32()); // no call took 10 s: no hedge
        Assert.True(budget.GetProperty("allowed").GetDouble() > 0);
    }

    /// <summary>The caller in zone-a; catalog's first endpoint there, the others in zone-b.</summary>
    internal static void ZoneSettings(IServiceCollection services) =>
        services.PostConfigure<MeshClient.Configuration.MeshOptions>(o =>
        {
            o.Zone = "zone-a";
            var endpoints = o.Services[MeshApp.Service].Endpoints;
            for (var i = 0; i < endpoints.Count; i++)
            {
                endpoints[i].Zone = i == 0 ? "zone-a" : "zone-b";
            }
        });

    [Fact]
    public async Task Json_ShowsEachRouteWithTheLiveShareOfItsBackends()
    {
        await using var app = await MeshApp.StartAsync(2, configure: MeshApp.ShopRoutes, map: a => a.MapMeshStatus("/mesh"));
        var client = app.MeshClient;
        for (var i = 0; i < 10; i++)
        {
            (await client.GetAsync("http://shop/items")).EnsureSuccessStatusCode(); // all to catalog: catalog-v2 is known to nobody
        }

        using var http = new HttpClient { BaseAddress = app.Address };
        using var json = JsonDocument.Parse(await http.GetStringAsync("/mesh?format=json"));
        var services = json.RootElement.GetProperty("services").EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);

        Assert.Empty(services["catalog"].GetProperty("routes").EnumerateArray());
        var shop = services["shop"];
        Assert.Empty(shop.GetProperty("endpoints").EnumerateArray());
        var route = Assert.Single(shop.GetProperty("routes").EnumerateArray());
        Assert.Equal("split", route.GetProperty("name").GetString());
        Assert.Equal(JsonValueKind.Null, route.GetProperty("match").ValueKind);
        Assert.Equal(5, route.GetProperty("timeoutSeconds").GetDouble());
        var backends = route.GetProperty("backends").EnumerateArray().ToList();
        Assert.Equal(["catalog", "catalog-v2"], backends.Select(b => b.GetProperty("service").GetString()));
        Assert.Equal([90, 10], backends.Select(b => b.GetProperty("weight").GetInt32()));
        Assert.Equal([100.0, 0.0], backends.Select(b => b.GetProperty("share").GetDouble()));
        Assert.Equal(["healthy", "down"], backends.Select(b => b.GetProperty("state").GetString()));
    }

    [Fact]
    public async Task Browser_GetsTheSelfContainedPage()
    {
        await using var app = await MeshApp.StartAsync(1, map: a => a.MapMeshStatus("/mesh"));
        using var http = new HttpClient { BaseAddress = app.Address };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/mesh");
        request.Headers.TryAddWithoutValidation("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("default-src 'none'", response.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        var html = await response.Content.ReadAsStringAsync();
        Assert.Contains("<script>", html, StringComparison.Ordinal);
        Assert.Contains("<style>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("src=", html, StringComparison.OrdinalIgnoreCase); // nothing loaded from elsewhere
        Assert.DoesNotContain("<link", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("http://", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("https://", html, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task RequireAuthorization_RefusesAnonymousCallers()
    {
        await using var app = await MeshApp.StartAsync(
            1,
            services => services.AddAuthorization().AddAuthentication(TestAuthentication.SchemeName).AddScheme<AuthenticationSchemeOptions, TestAuthentication>(TestAuthentication.SchemeName, null),
            a => a.MapMeshStatus("/mesh").RequireAuthorization());
        using var http = new HttpClient { BaseAddress = app.Address };

        using var anonymous = new HttpRequestMessage(HttpMethod.Get, "/mesh");
        anonymous.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        using var refused = await http.SendAsync(anonymous);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Empty(await refused.Content.ReadAsStringAsync());

        using var page = await http.GetAsync("/mesh");
        Assert.Equal(HttpStatusCode.Unauthorized, page.StatusCode);

        using var signedIn = new HttpRequestMessage(HttpMethod.Get, "/mesh");
        signedIn.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        signedIn.Headers.Add(TestAuthentication.Header, "operator");
        using var allowed = await http.SendAsync(signedIn);
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
    }

    [Fact]
    public async Task RequireHost_AnswersOnlyThatHost()
    {
        await using var app = await MeshApp.StartAsync(1, map: a => a.MapMeshStatus("/mesh").RequireHost("status.internal"));
        using var http = new HttpClient { BaseAddress = app.Address };

        using var other = await http.GetAsync("/mesh");
        Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);

        using var request = new HttpRequestMessage(HttpMethod.Get, "/mesh");
        request.Headers.Host = "status.internal";
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task MapMeshStatus_WithoutAddMesh_SaysWhatIsMissing()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        await using var app = builder.Build();

        var error = Assert.Throws<InvalidOperationException>(() => app.MapMeshStatus());
        Assert.Contains("AddMesh()", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Authenticates a request that carries <see cref="Header"/>, as the user it names.</summary>
    private sealed class TestAuthentication(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        public const string SchemeName = "Test";
        public const string Header = "X-Test-User";

        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            if (!Request.Headers.TryGetValue(Header, out var user))
            {
                return Task.FromResult(AuthenticateResult.NoResult());
            }

            var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, user.ToString())], SchemeName);
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
        }
    }
}
