using MeshClient.Kubernetes;
using MeshClient.KubernetesServer;
using MeshClient.Tests.Consul;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;

namespace MeshClient.Tests.Kubernetes;

/// <summary>Last known endpoints through every failure of the API server, and recovery; errors said once and clearly.</summary>
public sealed class KubernetesResilienceTests(ITestOutputHelper output)
{
    private const string Ns = "shop";
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WatchDroppedThen410_ListsAgain_NoFailedRequest_AndChangesMadeMeanwhileArrive(bool goneAsAnswer)
    {
        await using var pods = await Pods.StartAsync(3);
        await using var server = await KubernetesTestServer.CreateAsync();
        server.GoneAsAnswer = goneAsAnswer;
        server.Apply(Ns, Slices.Http("catalog", "catalog-a", pods.Port, pods["pod-0"].Endpoint(), pods["pod-1"].Endpoint()));
        await using var mesh = KubernetesTestHost.Create(server);
        var client = mesh.CreateClient();
        await client.GetStringAsync("http://catalog/");
        var watch = mesh.Cache.Find(new KubernetesServiceName(Ns, "catalog"))!;
        await Eventually.TrueAsync(() => server.ActiveWatches == 1, Limit, "the watch is open");

        await using var traffic = Traffic.Start(client, "http://catalog/", 100);
        await Task.Delay(200);

        // Cut the watch mid-stream: it resumes from its resourceVersion, with no new list.
        server.DropWatches();
        await Eventually.TrueAsync(() => watch.Watches >= 2 && server.ActiveWatches == 1, Limit, "the watch resumes");
        Assert.Equal(1, watch.Lists);
        server.Apply(Ns, Slices.Http("catalog", "catalog-a", pods.Port, pods["pod-0"].Endpoint(), pods["pod-1"].Endpoint(), pods["pod-2"].Endpoint()));
        await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("catalog")).Count == 3, TimeSpan.FromSeconds(1), "a change after the resumed watch arrives within 1 s");

        // Cut it again, change the slice while it is away, and let the history go: the resume gets 410 → list. The
        // first resume is refused (500, then the watch backs off), so it cannot come back between the change and the
        // compaction and see the change as an event, with no 410 (1 run in ~5 under load).
        server.Inject(500);
        server.DropWatches();
        server.Apply(Ns, Slices.Http("catalog", "catalog-a", pods.Port, pods["pod-1"].Endpoint(), pods["pod-2"].Endpoint()));
        server.Compact();
        await Eventually.TrueAsync(() => watch.Lists == 2, Limit, "410 Gone leads to a new list");
        await Eventually.TrueAsync(async () => !(await mesh.EndpointsAsync("catalog")).ContainsKey("pod-0"), Limit, "the change made during the outage is seen");
        await Task.Delay(200);
        await traffic.StopAsync();

        output.WriteLine($"{traffic.Requests} requests, {traffic.Failures.Count} failed; lists {watch.Lists}, watches {watch.Watches}");
        Assert.Empty(traffic.Failures);
        Assert.Contains(server.Requests, r => r.Watch && r.Query.Contains("allowWatchBookmarks=true", StringComparison.Ordinal));
        Assert.All(server.Requests.Where(r => r.Watch), r => Assert.Contains("resourceVersion=", r.Query, StringComparison.Ordinal));
    }

    [Fact]
    public async Task ApiServerDownFor5Seconds_LastKnownEndpointsServe_NoFailedRequest_ThenRecovers()
    {
        await using var pods = await Pods.StartAsync(3);
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply(Ns, Slices.Http("catalog", "catalog-a", pods.Port, pods["pod-0"].Endpoint(), pods["pod-1"].Endpoint()));
        await using var mesh = KubernetesTestHost.Create(server);
        var client = mesh.CreateClient();
        await client.GetStringAsync("http://catalog/");
        await Eventually.TrueAsync(() => server.ActiveWatches == 1, Limit, "the watch is open");

        await using var traffic = Traffic.Start(client, "http://catalog/", 100);
        await server.StopAsync();
        await Task.Delay(TimeSpan.FromSeconds(5));
        var during = traffic.Requests;
        Assert.Equal(2, (await mesh.EndpointsAsync("catalog")).Count);

        server.Apply(Ns, Slices.Http("catalog", "catalog-a", pods.Port, pods["pod-0"].Endpoint(), pods["pod-1"].Endpoint(), pods["pod-2"].Endpoint()));
        await server.StartAsync();
        var recovery = await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("catalog")).Count == 3, Limit, "recovers and sees the change");
        await Eventually.TrueAsync(() => pods["pod-2"].Count > 0, Limit, "the new pod gets traffic");
        await traffic.StopAsync();

        output.WriteLine($"{traffic.Requests} requests ({during} while the API server was down), {traffic.Failures.Count} failed; recovered {recovery.TotalMilliseconds:F0} ms after the restart");
        Assert.Empty(traffic.Failures);
        Assert.Single(mesh.Events(400)); // unavailable: once
        Assert.Single(mesh.Events(403)); // answers again: once
    }

    [Fact]
    public async Task Forbidden_OneClearError_NamingWhatIsMissing_ThenRecovers()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply(Ns, Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1")));
        server.ForbiddenNamespaces[Ns] = 0;
        await using var mesh = KubernetesTestHost.Create(server);

        Assert.Empty(await mesh.EndpointsAsync("catalog"));
        await Eventually.TrueAsync(() => server.CountRequests(watch: false) >= 4, Limit, "retries with backoff");
        Assert.True(mesh.Events(401).Count == 1, Dump(mesh));
        var error = mesh.Events(401)[0];
        output.WriteLine(error.Message);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Error, error.Level);
        Assert.Contains("'list' and 'watch' on 'endpointslices'", error.Message, StringComparison.Ordinal);
        Assert.Contains("namespace 'shop'", error.Message, StringComparison.Ordinal);
        Assert.Contains("discovery.k8s.io", error.Message, StringComparison.Ordinal);

        // A dotted host whose "namespace" is forbidden is most likely outside the cluster: a warning, not an error.
        server.ForbiddenNamespaces["com"] = 0;
        Assert.Empty(await mesh.EndpointsAsync("example.com"));
        Assert.True(mesh.Events(405).Count == 1, Dump(mesh));

        server.ForbiddenNamespaces.Clear();
        await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("catalog")).Count == 1, Limit, "recovers once granted");
        Assert.True(mesh.Events(401).Count == 1, Dump(mesh));
        await Eventually.TrueAsync(() => mesh.Events(406).Any(e => e.Message.Contains("namespace shop", StringComparison.Ordinal)), Limit, "the recovery is logged");
    }

    [Fact]
    public async Task RateLimitedAndServerErrors_BackOff_LastKnownEndpointsServe()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply(Ns, Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1")));
        await using var mesh = KubernetesTestHost.Create(server);
        Assert.Single(await mesh.EndpointsAsync("catalog"));
        await Eventually.TrueAsync(() => server.ActiveWatches == 1, Limit, "the watch is open");

        server.Inject(429, 2);
        server.Inject(500, 2);
        server.DropWatches();
        await Eventually.TrueAsync(() => server.PendingInjections == 0 && server.ActiveWatches == 1, Limit, "the watch comes back after the errors");
        Assert.Single(await mesh.EndpointsAsync("catalog"));
        var kinds = mesh.Events(400).Select(e => e.Message).ToList();
        Assert.Equal(2, kinds.Count); // rate limited, then server error: once each
        Assert.Contains("RateLimited", kinds[0], StringComparison.Ordinal);
        Assert.Contains("ServerError", kinds[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Token_NeverInALogLineAnExceptionOrToString()
    {
        const string Secret = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXNlcnZpY2UtYWNjb3VudC10b2tlbg.sig-7f3a";
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Token = "another-token"; // the mesh's token is refused (401) first
        server.Apply(Ns, Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1")));
        var directory = Directory.CreateTempSubdirectory("mesh-k8s-token-").FullName;
        try
        {
            var kubeconfig = Path.Combine(directory, "config");
            File.WriteAllText(kubeconfig, KubernetesTestHost.KubeConfig(server.Address, Secret, Ns));
            await using var mesh = KubernetesTestHost.Create(server, s => s["Mesh:Kubernetes:KubeConfigPath"] = kubeconfig);
            Assert.Empty(await mesh.EndpointsAsync("catalog"));
            await Eventually.TrueAsync(() => mesh.Events(402).Count == 1, Limit, "401 is logged");

            server.Token = Secret;
            server.ForbiddenNamespaces[Ns] = 0;
            await Eventually.TrueAsync(() => mesh.Events(401).Count == 1, Limit, "403 is logged");
            server.ForbiddenNamespaces.Clear();
            await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("catalog")).Count == 1, Limit, "accepted");
            await server.StopAsync();
            await Eventually.TrueAsync(() => mesh.Events(400).Count == 1, Limit, "down is logged");

            var client = mesh.Services.GetRequiredService<KubernetesApiClient>();
            var texts = mesh.Logs.GetSnapshot().SelectMany(r => new[] { r.Message, r.Exception?.ToString() ?? string.Empty }
                .Concat(r.StructuredState?.Select(p => p.Value ?? string.Empty) ?? []))
                .Append(mesh.Services.GetRequiredService<IOptions<KubernetesOptions>>().Value.ToString())
                .Append(KubernetesCredentials.Load(mesh.Services.GetRequiredService<IOptions<KubernetesOptions>>().Value).ToString())
                .ToList();
            Assert.True(texts.Count > 10);
            Assert.All(texts, t => Assert.DoesNotContain(Secret, t, StringComparison.Ordinal));
            Assert.All(texts, t => Assert.DoesNotContain("sig-7f3a", t, StringComparison.Ordinal));
            Assert.All(server.Requests, r => Assert.DoesNotContain(Secret, r.Query, StringComparison.Ordinal));
            Assert.NotNull(client);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task WatchEndsAtTimeoutSeconds_RenewedFromTheLastResourceVersion_BookmarksAdvanceIt()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        server.BookmarkInterval = TimeSpan.FromMilliseconds(200);
        server.Apply(Ns, Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1")));
        await using var mesh = KubernetesTestHost.Create(server, s => s["Mesh:Kubernetes:WatchTimeout"] = "00:00:01");
        Assert.Single(await mesh.EndpointsAsync("catalog"));
        var watch = mesh.Cache.Find(new KubernetesServiceName(Ns, "catalog"))!;

        // Another service changes: this watch sees no event of its own, but a bookmark carries the newer resourceVersion.
        server.Apply(Ns, Slices.Http("other", "other-a", 8080, new PodEndpoint("other-1", "10.2.0.1")));
        var latest = server.ResourceVersion.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await Eventually.TrueAsync(() => watch.ResourceVersion == latest, Limit, "a bookmark moves the resourceVersion");

        // Each watch lasts timeoutSeconds=1 and is renewed from where it was, with no new list.
        await Eventually.TrueAsync(() => watch.Watches >= 3, Limit, "renewed watches");
        Assert.Equal(1, watch.Lists);
        Assert.Contains(server.Requests, r => r.Watch && r.Query.Contains("timeoutSeconds=1", StringComparison.Ordinal) && r.Query.Contains("resourceVersion=" + latest, StringComparison.Ordinal));
        server.Apply(Ns, Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1"), new PodEndpoint("catalog-2", "10.1.0.2")));
        await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("catalog")).Count == 2, TimeSpan.FromSeconds(1), "a change still arrives within 1 s");
        Assert.Empty(mesh.Events(400));
    }

    [Fact]
    public async Task GarbageOnTheWatch_IsRejected_LastKnownEndpointsServe_TheWatchResumes()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply(Ns, Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1")));
        await using var mesh = KubernetesTestHost.Create(server);
        Assert.Single(await mesh.EndpointsAsync("catalog"));
        await Eventually.TrueAsync(() => server.ActiveWatches == 1, Limit, "the watch is open");

        server.InjectWatchLine("{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":");
        server.InjectWatchLine("<html>502 Bad Gateway</html>");
        await Eventually.TrueAsync(() => mesh.Events(412).Count == 1, Limit, "the bad event is reported");
        Assert.Single(await mesh.EndpointsAsync("catalog"));
        server.Apply(Ns, Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1"), new PodEndpoint("catalog-2", "10.1.0.2")));
        await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("catalog")).Count == 2, Limit, "the watch resumes");
        Assert.Contains("malformed", mesh.Events(412)[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServiceCreatedAfterTheFirstLookup_IsDiscoveredWithin1Second()
    {
        await using var pods = await Pods.StartAsync(1);
        await using var server = await KubernetesTestServer.CreateAsync();
        await using var mesh = KubernetesTestHost.Create(server);
        var client = mesh.CreateClient();
        await Assert.ThrowsAsync<UnknownServiceException>(() => client.GetAsync("http://catalog/"));

        server.Apply(Ns, Slices.Http("catalog", "catalog-a", pods.Port, pods["pod-0"].Endpoint()));
        await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("catalog")).Count == 1, TimeSpan.FromSeconds(1), "the new service is seen within 1 s");

        // The mesh's table follows the resolver's change token on its own thread: calls work within the same second.
        await Eventually.TrueAsync(
            async () =>
            {
                try
                {
                    return await client.GetStringAsync("http://catalog/") == "pod-0";
                }
                catch (UnknownServiceException)
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(1),
            "calls reach the new service within 1 s");
    }

    private static string Dump(KubernetesTestHost mesh) =>
        string.Join("\n", mesh.Logs.GetSnapshot().Where(r => r.Category?.Contains("Kubernetes", StringComparison.Ordinal) == true).Select(r => $"{r.Id.Id} {r.Message}"));
}
