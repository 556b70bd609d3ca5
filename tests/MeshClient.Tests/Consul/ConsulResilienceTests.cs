using MeshClient.Consul;
using MeshClient.ConsulServer;
using MeshClient.Handlers;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Primitives;
using Microsoft.Extensions.ServiceDiscovery;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace MeshClient.Tests.Consul;

/// <summary>Last-known-good through every failure, index rules on the wire, idle watches, cost, and client isolation.</summary>
public sealed class ConsulResilienceTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ConsulUnreachableForALongSpell_AndEveryFault_ZeroFailedRequestsToKnownServices()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var c = await TestBackend.StartAsync("c");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Faults.HugeBodyBytes = 2 * 1024 * 1024;
        consul.Register(Services.On(a, "web"));
        consul.Register(Services.On(b, "web"));
        await using var mesh = ConsulTestHost.Create(consul, s =>
        {
            s["Mesh:Consul:MaxResponseBytes"] = (1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture);
            s["Mesh:Consul:RequestTimeout"] = "00:00:01";
            s["Mesh:Consul:RetryMaxDelay"] = "00:00:00.200";
        });
        var client = mesh.CreateClient();
        (await client.GetAsync("http://web/")).EnsureSuccessStatusCode();

        var failures = 0;
        var successes = 0;
        using var stop = new CancellationTokenSource();
        var load = Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var response = await client.GetAsync("http://web/");
                    if (response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref successes);
                    }
                    else
                    {
                        Interlocked.Increment(ref failures);
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or MeshException)
                {
                    Interlocked.Increment(ref failures);
                }

                await Task.Delay(2);
            }
        }));

        // Down: connection refused, blocked query cut, for many backoff rounds.
        await consul.StopAsync();
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        await consul.StartAsync();
        foreach (var fault in new[]
        {
            ConsulFault.NoClusterLeader, ConsulFault.RpcError, ConsulFault.TooManyRequests, ConsulFault.ConnectionLimit,
            ConsulFault.ServiceUnavailable, ConsulFault.DropConnection, ConsulFault.MalformedBody, ConsulFault.HugeBody,
            ConsulFault.MalformedIndex, ConsulFault.Slow,
        })
        {
            consul.Faults.Inject(fault, "/v1/health/", fault == ConsulFault.Slow ? TimeSpan.FromSeconds(1.5) : TimeSpan.Zero);
            consul.DropWaitingQueries();
            var before = consul.CountRequests("/v1/health/");
            await Eventually.TrueAsync(() => consul.CountRequests("/v1/health/") >= before + 2, TimeSpan.FromSeconds(10), $"the watch keeps retrying through {fault}");
        }

        consul.Faults.Clear();
        stop.Cancel();
        await load;
        output.WriteLine($"{successes} requests, {failures} failed");
        Assert.Equal(0, failures);
        Assert.True(successes > 100);
        Assert.Equal(0, c.Count);

        // Back to normal: changes flow again.
        consul.Register(Services.On(c, "web"));
        await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("web")).ContainsKey("c"), TimeSpan.FromSeconds(3), "discovery recovers after the outage");

        // Errors were logged once per state change, never per request.
        var unavailable = mesh.Events(300).Count;
        var rejected = mesh.Events(305).Count;
        output.WriteLine($"ConsulUnavailable logged {unavailable}x, ConsulInvalidResponse {rejected}x, queries {consul.CountRequests("/v1/health/")}");
        Assert.InRange(unavailable, 1, 8);
        Assert.InRange(rejected, 1, 3);
        var lastOutage = mesh.Events(300)[^1].Timestamp;
        Assert.Single(mesh.Events(302), r => r.Timestamp >= lastOutage);
    }

    [Fact]
    public async Task IndexGoingBackwards_RestartsTheLoop_AndLaterChangesArriveWithinOneSecond()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web"));
        await using var mesh = ConsulTestHost.Create(consul, s => s["Mesh:Consul:Wait"] = "00:00:01");
        Assert.Single(await mesh.EndpointsAsync("web"));
        await Eventually.TrueAsync(() => consul.WaitingQueries == 1, TimeSpan.FromSeconds(5), "the watch blocks");

        // As after a snapshot restore: the blocked query holds until its wait ends, then answers with the lower index.
        consul.ResetIndex(2);
        await Eventually.TrueAsync(() => mesh.Events(307).Count == 1, TimeSpan.FromSeconds(5), "the watch notices the index went backwards");
        await Eventually.TrueAsync(() => consul.WaitingQueries == 1, TimeSpan.FromSeconds(5), "the watch blocks again, on the new index");
        var query = consul.Requests.Last(r => r.Path == "/v1/health/service/web");
        Assert.Contains("index=2", query.Query, StringComparison.Ordinal);

        consul.Register(Services.On(b, "web"));
        await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("web")).Count == 2, TimeSpan.FromSeconds(1), "a change after the reset arrives at once");
    }

    [Fact]
    public async Task IdempotentWrites_WakeTheWatch_ButFireNoChange()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web"));
        await using var mesh = ConsulTestHost.Create(consul);
        Assert.Single(await mesh.EndpointsAsync("web"));
        var changes = mesh.Events(303).Count;
        var resolver = mesh.Services.GetRequiredService<ServiceEndpointResolver>();
        var source = await resolver.GetEndpointsAsync("http://web", CancellationToken.None);
        Assert.True(source.ChangeToken.ActiveChangeCallbacks);

        for (var i = 0; i < 3; i++)
        {
            var before = consul.CountRequests("/v1/health/service/web");
            await Eventually.TrueAsync(() => consul.WaitingQueries == 1, TimeSpan.FromSeconds(5), "the watch blocks");
            consul.Touch("a");
            await Eventually.TrueAsync(() => consul.CountRequests("/v1/health/service/web") > before, TimeSpan.FromSeconds(5), "the write wakes the watch");
        }

        Assert.Equal(changes, mesh.Events(303).Count);
        Assert.False(source.ChangeToken.HasChanged);
    }

    [Fact]
    public async Task ZeroIndex_IsTreatedAsOne_WithoutAHotLoop()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web"));
        consul.Faults.Inject(ConsulFault.ZeroIndex, "/v1/health/");
        await using var mesh = ConsulTestHost.Create(consul);
        Assert.Single(await mesh.EndpointsAsync("web"));
        consul.ClearRequests();
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // a rate measurement needs a window
        var queries = consul.Requests.Where(r => r.Path == "/v1/health/service/web").ToList();
        Assert.All(queries, q => Assert.Contains("index=1", q.Query, StringComparison.Ordinal));

        // index=1 answers at once (the service's index is higher); the churn limiter keeps it to ~2 queries/s.
        Assert.InRange(queries.Count, 1, 6);
    }

    [Fact]
    public async Task WatchOfAServiceNoLongerUsed_EndsAfterTheIdlePeriod()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web"));
        var time = new FakeTimeProvider();
        await using var mesh = ConsulTestHost.Create(consul, s => s["Mesh:Consul:WatchIdleTimeout"] = "00:01:00", services => services.AddSingleton<TimeProvider>(time));
        var factory = mesh.Services.GetServices<IServiceEndpointProviderFactory>().OfType<ConsulEndpointProviderFactory>().Single();

        var first = await PopulateAsync(factory, "web");
        Assert.Single(first.Builder.Endpoints);
        Assert.Equal(1, mesh.Cache.Count);
        await Eventually.TrueAsync(() => consul.WaitingQueries == 1, TimeSpan.FromSeconds(5), "the watch blocks");
        await first.Provider.DisposeAsync();

        // Used again within the idle period: the same watch serves, no new query.
        time.Advance(TimeSpan.FromSeconds(59));
        var queries = consul.CountRequests("/v1/health/service/web");
        var second = await PopulateAsync(factory, "web");
        Assert.Single(second.Builder.Endpoints);
        Assert.Equal(queries, consul.CountRequests("/v1/health/service/web"));
        await second.Provider.DisposeAsync();

        time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(1, mesh.Cache.Count);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0, mesh.Cache.Count);
        await Eventually.TrueAsync(() => consul.WaitingQueries == 0, TimeSpan.FromSeconds(5), "the ended watch's blocking query is cancelled");
    }

    [Fact]
    public async Task HundredIdleWatchedServices_CostAboutOneQueryPerServicePerWait_OverAtMostOneConnectionEach()
    {
        const int Count = 100;
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync();
        for (var i = 0; i < Count; i++)
        {
            consul.Register(Services.On(a, "svc" + i, id: "svc" + i));
        }

        await using var mesh = ConsulTestHost.Create(consul, s => s["Mesh:Consul:Wait"] = "00:00:01");
        var resolver = mesh.Services.GetRequiredService<ServiceEndpointResolver>();
        await Task.WhenAll(Enumerable.Range(0, Count).Select(async i =>
            Assert.Single((await resolver.GetEndpointsAsync("http://svc" + i, CancellationToken.None)).Endpoints)));
        await Eventually.TrueAsync(() => consul.WaitingQueries == Count, TimeSpan.FromSeconds(10), "every watch blocks");

        var window = TimeSpan.FromSeconds(3);
        var connectionsBefore = consul.TotalConnections;
        consul.ClearRequests();
        await Task.Delay(window); // a rate measurement needs a window
        var perService = consul.Requests.Where(r => r.Path.StartsWith("/v1/health/service/", StringComparison.Ordinal))
            .GroupBy(r => r.Path).Select(g => g.Count()).ToList();
        var queries = perService.Sum();
        var perServicePerMinute = queries / (double)Count / window.TotalMinutes;
        output.WriteLine($"{queries} queries in {window.TotalSeconds}s for {Count} idle services = {perServicePerMinute:F1}/min per service with wait=1s " +
            $"(at most ~{60 / (1 + (1 / 32.0)):F1}); open connections {consul.OpenConnections}, new connections {consul.TotalConnections - connectionsBefore}");

        // Cost: one query per service per wait (1 s + up to 1/16 s of jitter), so at most 3 + 1 per service in 3 s
        // (fewer on a loaded machine, where timers fire late); at the default 5 min wait that is ~12 per hour.
        Assert.All(perService, n => Assert.InRange(n, 1, 4));
        Assert.InRange(perService.Count, Count - 5, Count);
        Assert.InRange(perServicePerMinute, 10, 66);
        Assert.InRange(consul.OpenConnections, Count, Count + 5);
        Assert.InRange(consul.TotalConnections - connectionsBefore, 0, 5);
    }

    [Fact]
    public async Task ConsulHttpClient_NeverPassesThroughMeshOrDefaultHandlers()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        await using var mesh = ConsulTestHost.Create(consul, configure: services =>
            services.ConfigureHttpClientDefaults(b =>
            {
                b.AddServiceDiscovery();
                b.AddStandardResilienceHandler();
            }));
        var factory = mesh.Services.GetRequiredService<IHttpMessageHandlerFactory>();

        var handlers = Chain(factory.CreateHandler(ConsulClient.HttpClientName));
        Assert.IsType<SocketsHttpHandler>(handlers[^1]);
        Assert.IsType<ConsulTokenHandler>(handlers[^2]);
        Assert.DoesNotContain(handlers, IsMeshHandler);
        Assert.DoesNotContain(handlers, h => h.GetType().Namespace?.StartsWith("Microsoft.Extensions.ServiceDiscovery", StringComparison.Ordinal) == true);
        Assert.DoesNotContain(handlers, h => h.GetType().Namespace?.StartsWith("Microsoft.Extensions.Http.Resilience", StringComparison.Ordinal) == true);
        Assert.DoesNotContain(handlers, h => h.GetType().Name.Contains("Logging", StringComparison.Ordinal));
        Assert.False(((SocketsHttpHandler)handlers[^1]).AllowAutoRedirect);

        // Any other client still gets the mesh.
        Assert.Contains(Chain(factory.CreateHandler("catalog")), h => h.GetType().Name == "MeshCallHandler");
    }

    // The Consul client's own token handler (it adds X-Consul-Token inside the primary handler) is not a mesh handler.
    private static bool IsMeshHandler(HttpMessageHandler handler) =>
        handler.GetType().Assembly == typeof(ConsulOptions).Assembly && handler is not ConsulTokenHandler;

    private static List<HttpMessageHandler> Chain(HttpMessageHandler handler)
    {
        var chain = new List<HttpMessageHandler>();
        for (HttpMessageHandler? current = handler; current is not null; current = (current as DelegatingHandler)?.InnerHandler)
        {
            chain.Add(current);
        }

        return chain;
    }

    private static async Task<(IServiceEndpointProvider Provider, TestEndpointBuilder Builder)> PopulateAsync(IServiceEndpointProviderFactory factory, string service)
    {
        Assert.True(ServiceEndpointQuery.TryParse("http://" + service, out var query));
        Assert.True(factory.TryCreateProvider(query!, out var provider));
        var builder = new TestEndpointBuilder();
        await provider.PopulateAsync(builder, CancellationToken.None);
        return (provider, builder);
    }

    internal sealed class TestEndpointBuilder : IServiceEndpointBuilder
    {
        public List<IChangeToken> Tokens { get; } = [];

        public IList<ServiceEndpoint> Endpoints { get; } = new List<ServiceEndpoint>();

        public IFeatureCollection Features { get; } = new FeatureCollection();

        public void AddChangeToken(IChangeToken changeToken) => Tokens.Add(changeToken);
    }
}
