using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using MeshClient.ConsulServer;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Consul;

/// <summary>The test server behaves as reference/consul-http-api.md says Consul does.</summary>
public sealed class ConsulTestServerTests
{
    [Fact]
    public async Task BlockingQuery_WaitsForAChange_WakesAtOnce_AndKeepsTheIndexOnTimeout()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web"));
        using var http = Client(consul);

        using var first = await http.GetAsync("/v1/health/service/web");
        var index = Index(first);
        Assert.True(index > 1);

        // Timeout: 200 with the unchanged index, after wait (+ at most wait/16).
        var started = TimeProvider.System.GetTimestamp();
        using var timedOut = await http.GetAsync($"/v1/health/service/web?index={index}&wait=300ms");
        Assert.True(TimeProvider.System.GetElapsedTime(started) >= TimeSpan.FromMilliseconds(290));
        Assert.Equal(HttpStatusCode.OK, timedOut.StatusCode);
        Assert.Equal(index, Index(timedOut));

        // A change wakes the blocked query at once, with a higher index.
        var blocked = http.GetAsync($"/v1/health/service/web?index={index}&wait=60s");
        await Eventually.TrueAsync(() => consul.WaitingQueries == 1, TimeSpan.FromSeconds(5), "the query blocks");
        started = TimeProvider.System.GetTimestamp();
        consul.SetCheckStatus("serfHealth", "warning");
        using var woken = await blocked;
        Assert.True(TimeProvider.System.GetElapsedTime(started) < TimeSpan.FromSeconds(5));
        Assert.True(Index(woken) > index);

        // A missing service answers [] with the last deregistration index, and wakes when any service is deregistered.
        using var missing = await http.GetAsync("/v1/health/service/ghost");
        Assert.Equal("[]", await missing.Content.ReadAsStringAsync());
        var extinction = Index(missing);
        var waiting = http.GetAsync($"/v1/health/service/ghost?index={extinction}&wait=60s");
        await Eventually.TrueAsync(() => consul.WaitingQueries == 1, TimeSpan.FromSeconds(5), "the query blocks");
        consul.Register(Services.On(a, "other", id: "other"));
        Assert.False(waiting.IsCompleted);
        consul.Deregister("other");
        using var afterExtinction = await waiting;
        Assert.True(Index(afterExtinction) > extinction);
    }

    [Fact]
    public async Task Wait_DefaultsAndIsCapped_ByTheServerLimits()
    {
        await using var consul = await ConsulTestServer.StartAsync(new ConsulServerOptions
        {
            DefaultQueryTime = TimeSpan.FromMilliseconds(300),
            MaxQueryTime = TimeSpan.FromMilliseconds(400),
        });
        using var http = Client(consul);
        var index = Index(await http.GetAsync("/v1/health/service/web"));
        foreach (var (query, min) in new[] { (string.Empty, 290), ("&wait=10m", 390) })
        {
            var started = TimeProvider.System.GetTimestamp();
            using var response = await http.GetAsync($"/v1/health/service/web?index={index}{query}");
            var elapsed = TimeProvider.System.GetElapsedTime(started);
            Assert.True(elapsed >= TimeSpan.FromMilliseconds(min) && elapsed < TimeSpan.FromSeconds(5), $"{query}: {elapsed}");
        }
    }

    [Fact]
    public async Task Headers_OnTheWire_UseGoCanonicalCasing()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        var head = await RawGetAsync(consul, "/v1/health/service/web");
        Assert.Contains("\r\nContent-Type: application/json\r\n", head, StringComparison.Ordinal);
        Assert.Matches(@"\r\nX-Consul-Index: \d+\r\n", head);
        Assert.Contains("\r\nX-Consul-Knownleader: true\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nX-Consul-Lastcontact: 0\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nX-Consul-Effective-Consistency: leader\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nX-Consul-Default-Acl-Policy: allow\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nVary: Accept-Encoding\r\n", head, StringComparison.Ordinal);

        var error = await RawGetAsync(consul, "/v1/health/service/web?index=abc");
        Assert.StartsWith("HTTP/1.1 400", error, StringComparison.Ordinal);
        Assert.Contains("\r\nContent-Type: text/plain; charset=utf-8\r\n", error, StringComparison.Ordinal);
        Assert.EndsWith("\r\n\r\nInvalid index", error, StringComparison.Ordinal);

        using var http = Client(consul);
        http.DefaultRequestHeaders.AcceptEncoding.ParseAdd("gzip");
        using var gzip = await http.GetAsync("/v1/catalog/services");
        Assert.Equal("gzip", Assert.Single(gzip.Content.Headers.ContentEncoding));
        using var stale = await http.GetAsync("/v1/health/service/web?stale");
        Assert.Equal("stale", stale.Headers.GetValues("X-Consul-Effective-Consistency").Single());
    }

    [Fact]
    public async Task Passing_Tags_AndFilter_SelectAsConsulDoes()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(new ServiceDefinition { Id = "a", Name = "web", Port = 1, Tags = ["primary", "v1"], Checks = [Services.Ttl("passing")] });
        consul.Register(new ServiceDefinition { Id = "b", Name = "web", Port = 2, Tags = ["secondary"], Checks = [Services.Ttl("warning")] });
        consul.Register(new ServiceDefinition { Id = "c", Name = "web", Port = 3, Tags = ["primary"], Checks = [Services.Ttl("critical")] });
        using var http = Client(consul);

        Assert.Equal(["a"], await IdsAsync(http, "/v1/health/service/web?passing"));
        Assert.Equal(["a"], await IdsAsync(http, "/v1/health/service/web?passing=1"));
        Assert.Equal(["a", "b", "c"], await IdsAsync(http, "/v1/health/service/web?passing=false"));
        Assert.Equal(["a", "c"], await IdsAsync(http, "/v1/health/service/web?tag=PRIMARY"));
        Assert.Equal(["a"], await IdsAsync(http, "/v1/health/service/web?tag=primary&tag=v1"));
        Assert.Equal(["b"], await IdsAsync(http, "/v1/health/service/web?filter=" + Uri.EscapeDataString("\"secondary\" in Service.Tags")));
        Assert.Equal(["a", "c"], await IdsAsync(http, "/v1/catalog/service/web?tag=primary"));
        await AssertErrorAsync(http, "/v1/health/service/web?passing=maybe", 400, "Invalid value for ?passing");
        await AssertErrorAsync(http, "/v1/health/service/web?filter=" + Uri.EscapeDataString("Service.Tags ~~ x"), 500, "Failed to create boolean expression evaluator: ");
    }

    [Fact]
    public async Task BadRequests_GetConsulsStatusAndPlainTextBody()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        using var http = Client(consul);
        await AssertErrorAsync(http, "/v1/health/service/web?index=-1", 400, "Invalid index");
        await AssertErrorAsync(http, "/v1/health/service/web?index=1&wait=10", 400, "Invalid wait time");
        await AssertErrorAsync(http, "/v1/health/service/web?stale&consistent", 400, "Cannot specify ?stale with ?consistent, conflicting semantics.");
        await AssertErrorAsync(http, "/v1/health/service/web?cached&consistent", 400, "Cannot specify ?cached with ?consistent, conflicting semantics.");
        await AssertErrorAsync(http, "/v1/health/service/web?ns=team", 400, "Invalid query parameter: \"ns\" - Namespaces are a Consul Enterprise feature");
        await AssertErrorAsync(http, "/v1/health/service/web?partition=p", 400, "Invalid query parameter: \"partition\" - Partitions are a Consul Enterprise feature");
        await AssertErrorAsync(http, "/v1/health/service/web?dc=dc9", 500, "No path to datacenter");
        await AssertErrorAsync(http, "/v1/health/service/", 400, "Missing service name");
        await AssertErrorAsync(http, "/v1/nothing/here", 404, "Invalid URL path: not a recognized HTTP API endpoint\n");

        using var post = await http.PostAsync("/v1/health/service/web", null);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
        Assert.Equal("method POST not allowed", await post.Content.ReadAsStringAsync());
        Assert.Equal("OPTIONS,GET", post.Content.Headers.Allow.Count > 0 ? string.Join(',', post.Content.Headers.Allow) : post.Headers.GetValues("Allow").Single());

        await using var enterprise = await ConsulTestServer.StartAsync(new ConsulServerOptions { Enterprise = true });
        using var http2 = Client(enterprise);
        Assert.Equal(HttpStatusCode.OK, (await http2.GetAsync("/v1/health/service/web?ns=team&partition=p")).StatusCode);
    }

    [Fact]
    public async Task Acl_RefusesUnknownTokens_FiltersReads_AndDeniesWritesWithConsulsBodies()
    {
        var options = new ConsulServerOptions { AclEnabled = true };
        options.AclTokens.Add(new("root-secret", "11111111-0000-4000-8000-000000000001", true, true));
        options.AclTokens.Add(new("read-secret", "11111111-0000-4000-8000-000000000002", true, false));
        options.AclTokens.Add(new("none-secret", "11111111-0000-4000-8000-000000000003", false, false));
        await using var consul = await ConsulTestServer.StartAsync(options);
        consul.Register(new ServiceDefinition { Id = "web1", Name = "web", Port = 80 });
        using var http = Client(consul);

        await AssertErrorAsync(http, "/v1/health/service/web", 403, "ACL not found", "X-Consul-Token", "wrong");
        await AssertErrorAsync(http, "/v1/health/service/web?token=wrong", 403, "ACL not found");
        await AssertErrorAsync(http, "/v1/health/service/web", 403, "ACL not found", "Authorization", "bEaReR wrong");
        await AssertErrorAsync(http, "/v1/health/service/web?token=wrong", 403, "ACL not found", "X-Consul-Token", "root-secret"); // ?token= wins

        // Reads without the right are filtered, not refused.
        Assert.Equal(["web1"], await IdsAsync(http, "/v1/health/service/web", "read-secret"));
        using var anonymous = await http.GetAsync("/v1/health/service/web");
        Assert.Equal("[]", await anonymous.Content.ReadAsStringAsync());
        Assert.False(anonymous.Headers.Contains("X-Consul-Results-Filtered-By-Acls"));
        Assert.Equal("deny", anonymous.Headers.GetValues("X-Consul-Default-Acl-Policy").Single());
        using var none = await SendAsync(http, HttpMethod.Get, "/v1/health/service/web", "none-secret");
        Assert.Equal("[]", await none.Content.ReadAsStringAsync());
        Assert.Equal("true", none.Headers.GetValues("X-Consul-Results-Filtered-By-Acls").Single());

        // Writes without the right: 403 Permission denied naming the accessor (never the secret).
        using var register = await SendAsync(http, HttpMethod.Put, "/v1/agent/service/register", "read-secret", """{"Name":"web","ID":"web2"}""");
        Assert.Equal(HttpStatusCode.Forbidden, register.StatusCode);
        Assert.Equal("Permission denied: token with AccessorID '11111111-0000-4000-8000-000000000002' lacks permission 'service:write' on \"web\"", await register.Content.ReadAsStringAsync());
        using var anonymousWrite = await SendAsync(http, HttpMethod.Put, "/v1/agent/service/deregister/web1", null);
        Assert.Equal("Permission denied: token with AccessorID '00000000-0000-0000-0000-000000000002' lacks permission 'service:write' on \"web\"", await anonymousWrite.Content.ReadAsStringAsync());
        using var allowed = await SendAsync(http, HttpMethod.Put, "/v1/agent/service/register", "root-secret", """{"Name":"web","ID":"web2"}""");
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.DoesNotContain(consul.Requests, r => r.Query.Contains("wrong", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AgentWrites_AnswerAsConsul_ChecksMaintenanceAndErrors()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        using var http = Client(consul);
        Assert.Equal(HttpStatusCode.OK, (await PutAsync(http, "/v1/agent/service/register", """
            {"name":"web","id":"web1","port":80,"check":{"ttl":"30s","deregister_critical_service_after":"90m"}}
            """)).StatusCode);
        var check = await CheckAsync(http, "web");
        Assert.Equal(("service:web1", "critical", "ttl"), (check.GetProperty("CheckID").GetString(), check.GetProperty("Status").GetString(), check.GetProperty("Type").GetString()));

        await AssertPutAsync(http, "/v1/agent/check/pass/service:web1?note=all%20good", 200, string.Empty);
        check = await CheckAsync(http, "web");
        Assert.Equal(("passing", "all good"), (check.GetProperty("Status").GetString(), check.GetProperty("Output").GetString()));
        await AssertPutAsync(http, "/v1/agent/check/warn/service:web1", 200, string.Empty);
        Assert.Equal("warning", (await CheckAsync(http, "web")).GetProperty("Status").GetString());
        await AssertPutAsync(http, "/v1/agent/check/fail/service:web1", 200, string.Empty);
        Assert.Equal("critical", (await CheckAsync(http, "web")).GetProperty("Status").GetString());
        await AssertPutAsync(http, "/v1/agent/check/update/service:web1", 400, "Invalid check status: 'bogus'", """{"Status":"bogus"}""");
        await AssertPutAsync(http, "/v1/agent/check/update/service:web1", 200, string.Empty, """{"Status":"passing","Output":"fine"}""");

        const string UnknownCheck = "Unknown check ID \"nope\". Ensure that the check ID is passed, not the check name.";
        foreach (var verb in new[] { "pass", "warn", "fail" })
        {
            await AssertPutAsync(http, $"/v1/agent/check/{verb}/nope", 404, UnknownCheck);
        }

        await AssertPutAsync(http, "/v1/agent/check/update/nope", 404, UnknownCheck, """{"Status":"passing"}""");
        await AssertPutAsync(http, "/v1/agent/check/pass/serfHealth", 500, "CheckID \"serfHealth\" does not have associated TTL");

        // Maintenance: a synthetic critical check, removed by ?passing.
        await AssertPutAsync(http, "/v1/agent/service/maintenance/web1", 400, "Missing value for enable");
        await AssertPutAsync(http, "/v1/agent/service/maintenance/web1?enable=maybe", 400, "Invalid value for enable: \"maybe\"");
        await AssertPutAsync(http, "/v1/agent/service/maintenance/web1?enable=true&reason=deploy", 200, string.Empty);
        var maintenance = (await http.GetFromJsonAsync<JsonElement>("/v1/health/service/web"))[0].GetProperty("Checks").EnumerateArray()
            .Single(c => c.GetProperty("CheckID").GetString() == "_service_maintenance:web1");
        Assert.Equal(("Service Maintenance Mode", "critical", "deploy"), (maintenance.GetProperty("Name").GetString(), maintenance.GetProperty("Status").GetString(), maintenance.GetProperty("Notes").GetString()));
        Assert.Empty(await IdsAsync(http, "/v1/health/service/web?passing"));
        await AssertPutAsync(http, "/v1/agent/service/maintenance/web1?enable=false", 200, string.Empty);
        Assert.Equal(["web1"], await IdsAsync(http, "/v1/health/service/web?passing"));

        await AssertPutAsync(http, "/v1/agent/service/deregister/nope", 404, "Unknown service ID \"nope\". Ensure that the service ID is passed, not the service name.");
        await AssertPutAsync(http, "/v1/agent/service/deregister/web1", 200, string.Empty);
        Assert.Empty(await IdsAsync(http, "/v1/health/service/web"));
    }

    [Theory]
    [InlineData("""{"ID":"x"}""", "Missing service name")]
    [InlineData("""{"Name":"web","Address":"0.0.0.0"}""", "Invalid service address")]
    [InlineData("""{"Name":"web","Weights":{"Passing":0,"Warning":1}}""", "Invalid Weights: Passing must be greater than 0")]
    [InlineData("""{"Name":"web","Weights":{"Passing":1,"Warning":-1}}""", "Invalid Weights: Warning must be greater or equal than 0")]
    [InlineData("""{"Name":"web","Weights":{"Passing":70000,"Warning":1}}""", "Invalid Weights: DNS Weight must be between 0 and 65535")]
    [InlineData("""{"Name":"web","Meta":{"bad key":"v"}}""", "Invalid Service Meta: Couldn't load metadata pair ('bad key', 'v'): Key contains invalid characters")]
    [InlineData("""{"Name":"web","Check":{"TTL":"10s","Status":"sleepy"}}""", "Status for checks must 'passing', 'warning', 'critical'")]
    [InlineData("""{"Name":"web","Check":{"HTTP":"http://127.0.0.1:1/health"}}""", "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks")]
    [InlineData("""{"Name":"web","Port":"eighty"}""", "Request decode failed: ")]
    [InlineData("""{"Name":""", "Request decode failed: ")]
    public async Task InvalidRegistrations_Get400WithConsulsMessage(string body, string message)
    {
        await using var consul = await ConsulTestServer.StartAsync();
        using var http = Client(consul);
        using var response = await PutAsync(http, "/v1/agent/service/register", body);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith(message, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TtlExpiry_TurnsTheCheckCritical_AndTheReaperDeregistersAfterDeregisterCriticalServiceAfter()
    {
        var time = new FakeTimeProvider();
        await using var consul = await ConsulTestServer.StartAsync(new ConsulServerOptions { TimeProvider = time });
        using var http = Client(consul);
        await AssertPutAsync(http, "/v1/agent/service/register", 200, string.Empty, """{"Name":"web","ID":"web1","Check":{"TTL":"10s","DeregisterCriticalServiceAfter":"1m"}}""");
        await AssertPutAsync(http, "/v1/agent/service/register", 200, string.Empty, """{"Name":"web","ID":"web2","Check":{"TTL":"10s","DeregisterCriticalServiceAfter":"5s"}}""");
        await AssertPutAsync(http, "/v1/agent/check/pass/service:web1", 200, string.Empty);
        await AssertPutAsync(http, "/v1/agent/check/pass/service:web2", 200, string.Empty);

        time.Advance(TimeSpan.FromSeconds(9));
        await AssertPutAsync(http, "/v1/agent/check/pass/service:web1", 200, string.Empty); // resets web1's TTL clock
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(["web1"], await IdsAsync(http, "/v1/health/service/web?passing"));
        var expired = (await http.GetFromJsonAsync<JsonElement>("/v1/agent/checks")).GetProperty("service:web2");
        Assert.Equal(("critical", "TTL expired"), (expired.GetProperty("Status").GetString(), expired.GetProperty("Output").GetString()));

        // web2 went critical at t=10 s; DeregisterCriticalServiceAfter is raised to the 1 min floor; the reaper runs every 30 s.
        time.Advance(TimeSpan.FromSeconds(49));  // t = 60 s: critical for 50 s
        Assert.Equal(["web1", "web2"], await IdsAsync(http, "/v1/health/service/web"));
        time.Advance(TimeSpan.FromSeconds(30));  // t = 90 s: critical for 80 s
        Assert.Equal(["web1"], await IdsAsync(http, "/v1/health/service/web"));
    }

    [Fact]
    public async Task HttpCheck_RunsOnItsInterval_AgainstTheRegisteredUrl()
    {
        var status = 200;
        await using var backend = await TestBackend.StartAsync("web", async context =>
        {
            context.Response.StatusCode = status;
            await context.Response.WriteAsync("state " + status);
        });
        await using var consul = await ConsulTestServer.StartAsync(new ConsulServerOptions { HttpCheckInitialStagger = false });
        consul.Register(new ServiceDefinition
        {
            Id = "web1",
            Name = "web",
            Port = backend.Port,
            Checks = [new CheckDefinition { Http = new Uri(backend.Address, "/health").ToString(), Interval = TimeSpan.FromMilliseconds(200), Timeout = TimeSpan.FromSeconds(2) }],
        });
        using var http = Client(consul);
        foreach (var (code, expected) in new[] { (200, "passing"), (429, "warning"), (503, "critical"), (200, "passing") })
        {
            status = code;
            await Eventually.TrueAsync(async () => (await CheckAsync(http, "web")).GetProperty("Status").GetString() == expected, TimeSpan.FromSeconds(5), $"{code} makes the check {expected}");
        }

        Assert.Equal($"HTTP GET {backend.Address}health: 200 OK Output: state 200", (await CheckAsync(http, "web")).GetProperty("Output").GetString());
        Assert.All(backend.Requests, r => Assert.Equal("/health", r.PathAndQuery));
    }

    [Fact]
    public async Task Faults_LookOnTheWireAsConsulsFailuresDo()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        using var http = Client(consul);

        consul.Faults.Inject(ConsulFault.NoClusterLeader);
        await AssertErrorAsync(http, "/v1/health/service/web", 500, "No cluster leader");
        consul.Faults.Inject(ConsulFault.TooManyRequests);
        await AssertErrorAsync(http, "/v1/health/service/web", 429, string.Empty);
        consul.Faults.Inject(ConsulFault.ConnectionLimit);
        var raw = await RawGetAsync(consul, "/v1/health/service/web");
        Assert.StartsWith("HTTP/1.1 429", raw, StringComparison.Ordinal);
        Assert.Contains("\r\nConnection: close\r\n", raw, StringComparison.Ordinal);
        Assert.DoesNotContain("X-Consul", raw, StringComparison.Ordinal);
        Assert.EndsWith("Your IP is issuing too many concurrent connections, please rate limit your calls\n", raw, StringComparison.Ordinal);
        consul.Faults.Inject(ConsulFault.DropConnection);
        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync("/v1/health/service/web"));
        consul.Faults.Inject(ConsulFault.MalformedIndex);
        Assert.Equal("not-a-number", (await http.GetAsync("/v1/health/service/web")).Headers.GetValues("X-Consul-Index").Single());
        consul.Faults.Inject(ConsulFault.MalformedBody);
        consul.Register(new ServiceDefinition { Id = "web1", Name = "web", Port = 80 });
        var malformed = await http.GetStringAsync("/v1/health/service/web");
        Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(malformed));
        consul.Faults.HugeBodyBytes = 1024 * 1024;
        consul.Faults.Inject(ConsulFault.HugeBody);
        using (var huge = await http.GetAsync("/v1/health/service/web", HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Null(huge.Content.Headers.ContentLength);
            Assert.True((await huge.Content.ReadAsByteArrayAsync()).Length > 1024 * 1024);
        }

        // Only the matching paths are affected; a blocked query can be cut mid-wait.
        consul.Faults.Inject(ConsulFault.NoClusterLeader, "/v1/agent/");
        var index = Index(await http.GetAsync("/v1/health/service/web"));
        var blocked = http.GetAsync($"/v1/health/service/web?index={index}&wait=60s");
        await Eventually.TrueAsync(() => consul.WaitingQueries == 1, TimeSpan.FromSeconds(5), "the query blocks");
        consul.DropWaitingQueries();
        await Assert.ThrowsAsync<HttpRequestException>(() => blocked);
    }

    [Fact]
    public async Task Restart_KeepsThePortAndTheCatalog_AndAStoppedServerRefusesConnections()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(new ServiceDefinition { Id = "web1", Name = "web", Port = 80 });
        var port = consul.Port;
        using var http = Client(consul);
        var blocked = http.GetAsync($"/v1/health/service/web?index={consul.ServiceIndex("web")}&wait=60s");
        await Eventually.TrueAsync(() => consul.WaitingQueries == 1, TimeSpan.FromSeconds(5), "the query blocks");
        await consul.StopAsync();
        await Assert.ThrowsAsync<HttpRequestException>(() => blocked);
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync("/v1/health/service/web"));
        Assert.Equal(SocketError.ConnectionRefused, (refused.InnerException as SocketException)?.SocketErrorCode);
        await consul.StartAsync();
        Assert.Equal(port, consul.Port);
        Assert.Equal(["web1"], await IdsAsync(http, "/v1/health/service/web"));
    }

    private static HttpClient Client(ConsulTestServer consul) => new() { BaseAddress = consul.Address, Timeout = TimeSpan.FromSeconds(30) };

    private static ulong Index(HttpResponseMessage response) => ulong.Parse(response.Headers.GetValues("X-Consul-Index").Single(), System.Globalization.CultureInfo.InvariantCulture);

    private static async Task<List<string>> IdsAsync(HttpClient http, string path, string? token = null)
    {
        using var response = await SendAsync(http, HttpMethod.Get, path, token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await response.Content.ReadFromJsonAsync<JsonElement>();
        return [.. json.EnumerateArray().Select(e => e.TryGetProperty("Service", out var s) ? s.GetProperty("ID").GetString()! : e.GetProperty("ServiceID").GetString()!).Order(StringComparer.Ordinal)];
    }

    private static async Task<JsonElement> CheckAsync(HttpClient http, string service) =>
        (await http.GetFromJsonAsync<JsonElement>($"/v1/health/service/{service}"))[0].GetProperty("Checks").EnumerateArray().First(c => c.GetProperty("ServiceID").GetString()!.Length > 0);

    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, HttpMethod method, string path, string? token, string? body = null, string tokenHeader = "X-Consul-Token")
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null)
        {
            request.Headers.TryAddWithoutValidation(tokenHeader, token);
        }

        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        return await http.SendAsync(request);
    }

    private static Task<HttpResponseMessage> PutAsync(HttpClient http, string path, string body) => SendAsync(http, HttpMethod.Put, path, null, body);

    private static async Task AssertPutAsync(HttpClient http, string path, int status, string body, string? content = null)
    {
        using var response = await SendAsync(http, HttpMethod.Put, path, null, content);
        Assert.Equal((status, body), ((int)response.StatusCode, await response.Content.ReadAsStringAsync()));
    }

    private static async Task AssertErrorAsync(HttpClient http, string path, int status, string body, string? header = null, string? value = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (header is not null)
        {
            request.Headers.TryAddWithoutValidation(header, value);
        }

        using var response = await http.SendAsync(request);
        Assert.Equal(status, (int)response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(body.Length == 0 ? text.Length == 0 : text.StartsWith(body, StringComparison.Ordinal), $"body: {text}");
        if (text.Length > 0)
        {
            Assert.Equal("text/plain; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        }
    }

    /// <summary>A raw HTTP/1.1 exchange, to see header names exactly as they are on the wire.</summary>
    private static async Task<string> RawGetAsync(ConsulTestServer consul, string path)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, consul.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return await reader.ReadToEndAsync();
    }
}
