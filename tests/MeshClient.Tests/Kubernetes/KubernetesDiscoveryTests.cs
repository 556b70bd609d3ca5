using System.Globalization;
using MeshClient.Balancing;
using MeshClient.Discovery;
using MeshClient.Kubernetes;
using MeshClient.KubernetesServer;
using MeshClient.Status;
using MeshClient.Tests.Consul;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Microsoft.Extensions.ServiceDiscovery;
using Xunit.Abstractions;
using k8s.Models;

namespace MeshClient.Tests.Kubernetes;

/// <summary>What the provider resolves, and how EndpointSlices become endpoints.</summary>
public sealed class KubernetesDiscoveryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ServiceNames_ResolveLikeClusterDns_InTheDefaultAndNamedNamespaces()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply("shop", Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1")));
        server.Apply("other", Slices.Http("catalog", "catalog-b", 8080, new PodEndpoint("catalog-2", "10.2.0.2")));
        await using var mesh = KubernetesTestHost.Create(server);
        Assert.Equal(["catalog-1"], (await mesh.EndpointsAsync("catalog")).Keys);

        Assert.Equal("http://10.1.0.1:8080/", (await mesh.EndpointsAsync("catalog"))["catalog-1"]);
        Assert.Equal(["catalog-2"], (await mesh.EndpointsAsync("catalog.other")).Keys);
        Assert.Equal(["catalog-2"], (await mesh.EndpointsAsync("catalog.other.svc")).Keys);
        Assert.Equal(["catalog-2"], (await mesh.EndpointsAsync("catalog.other.svc.cluster.local")).Keys);
    }

    [Fact]
    public async Task MeshStatus_NamesKubernetesAsTheDiscoverySource()
    {
        // Issue 15, item 7: IMeshStatus says which provider found each service.
        await using var pods = await Pods.StartAsync(2);
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply("shop", Slices.Http("catalog", "catalog-a", pods.Port, [.. pods.All.Select(p => p.Endpoint())]));
        await using var mesh = KubernetesTestHost.Create(server);
        var client = mesh.CreateClient();
        for (var i = 0; i < 4; i++)
        {
            using var response = await client.GetAsync(new Uri("http://catalog/"));
            response.EnsureSuccessStatusCode();
        }

        var services = mesh.Services.GetRequiredService<IMeshStatus>().GetServices();
        var catalog = Assert.Single(services, s => s.Name == "catalog");
        Assert.Equal("Kubernetes", catalog.DiscoverySource);
        Assert.Equal(2, catalog.Endpoints.Count);
        Assert.NotNull(catalog.LastUpdated);
        Assert.Null(catalog.DiscoveryError);
    }

    [Fact]
    public async Task UnknownNames_FallThrough_AndStaticConfigurationWins_WithoutAWatch()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply("shop", Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1")));
        await using var mesh = KubernetesTestHost.Create(server, s =>
        {
            s["Mesh:Services:catalog:Endpoints:0:Address"] = "http://10.9.9.9:80";
            s["Services:legacy:http:0"] = "http://10.8.8.8:80";
        });

        // A static service never reaches the API server.
        Assert.Equal(["http://10.9.9.9/"], (await mesh.EndpointsAsync("catalog")).Keys);
        Assert.Null(mesh.Cache.Find(new KubernetesServiceName("shop", "catalog")));

        // A name Kubernetes does not know falls through to the standard configuration provider.
        var legacy = await mesh.Services.GetRequiredService<ServiceEndpointResolver>().GetEndpointsAsync("http://legacy", CancellationToken.None);
        Assert.Equal("http://10.8.8.8/", Assert.Single(legacy.Endpoints).EndPoint.ToString());

        // Hosts that cannot be Services are never asked about.
        Assert.False(mesh.Cache.TryParse("api.example.com", out _));
        Assert.False(mesh.Cache.TryParse("localhost", out _));
        Assert.False(mesh.Cache.TryParse("Under_Score", out _));
        Assert.True(mesh.Cache.TryParse("catalog.shop.svc.cluster.local.", out var fqdn));
        Assert.Equal(new KubernetesServiceName("shop", "catalog"), fqdn);
    }

    [Fact]
    public void EndpointRules_ReadyRoutable_TerminatingOnlyWithoutReady_ZoneIdIPv6Ports()
    {
        var ready = Slices.For("catalog", "catalog-v4", [
            new PodEndpoint("a", "10.0.0.1", Ready: true, Zone: "eu-west-1a"),
            new PodEndpoint("b", "10.0.0.2", Ready: null), // absent means ready
            new PodEndpoint("c", "10.0.0.3", Ready: false, Serving: true, Terminating: true),
            new PodEndpoint("d", "10.0.0.4", Ready: false, Serving: false)],
            "IPv4", ("metrics", 9090, null), ("http", 8080, null));
        var v6 = Slices.For("catalog", "catalog-v6", [new PodEndpoint("a", "fd00::1"), new PodEndpoint("e", "fd00::5")], "IPv6", ("http", 8080, null));
        var instances = KubernetesServiceState.Select([ready, v6], portName: null);
        Assert.Equal(["a", "b", "e"], instances.Select(i => i.Id));
        Assert.Equal("http://10.0.0.1:8080/", instances[0].Address.ToString()); // dual-stack pod: IPv4 first
        Assert.Equal("eu-west-1a", instances[0].Zone);
        Assert.Equal("http://[fd00::5]:8080/", instances[2].Address.ToString());

        // No ready endpoint: the serving, terminating ones carry the traffic (kube-proxy's graceful termination).
        var draining = Slices.For("catalog", "catalog-v4", [
            new PodEndpoint("c", "10.0.0.3", Ready: false, Serving: true, Terminating: true),
            new PodEndpoint("d", "10.0.0.4", Ready: false, Serving: false, Terminating: true)],
            "IPv4", ("http", 8080, null));
        var fallback = Assert.Single(KubernetesServiceState.Select([draining], null));
        Assert.Equal("c", fallback.Id);
        Assert.True(fallback.Terminating);

        // The port: PortName, else http/https/grpc, else the only one; appProtocol https sets the scheme.
        var tls = Slices.For("catalog", "s", [new PodEndpoint("a", "10.0.0.1")], "IPv4", ("web", 8443, "https"), ("admin", 9000, null));
        Assert.Equal("https://10.0.0.1:8443/", Assert.Single(KubernetesServiceState.Select([tls], "web")).Address.ToString());
        var rejected = new List<string>();
        Assert.Empty(KubernetesServiceState.Select([tls], null, rejected));
        Assert.Contains("PortName", Assert.Single(rejected), StringComparison.Ordinal);
        var only = Slices.For("catalog", "s", [new PodEndpoint("a", "10.0.0.1")], "IPv4", (null, 7000, "kubernetes.io/h2c"));
        Assert.Equal("http://10.0.0.1:7000/", Assert.Single(KubernetesServiceState.Select([only], null)).Address.ToString());
        var named = Slices.For("catalog", "s", [new PodEndpoint("a", "10.0.0.1")], "IPv4", ("grpc", 50051, null), ("https", 443, null));
        Assert.Equal("https://10.0.0.1/", Assert.Single(KubernetesServiceState.Select([named], null)).Address.ToString());
        var fqdnSlice = Slices.For("catalog", "s", [new PodEndpoint("a", "db.example.com")], "FQDN", ("http", 80, null));
        Assert.Empty(KubernetesServiceState.Select([fqdnSlice], null));
    }

    [Fact]
    public async Task ZoneAndPodId_ReachTheEndpointFeature_AndPortNameIsConfigurable()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply("shop", Slices.For("catalog", "catalog-a", [new PodEndpoint("catalog-1", "10.1.0.1", Zone: "zone-b", Node: "node-7", ForZones: ["zone-b", "zone-c"])], "IPv4", ("http", 8080, null), ("admin", 9000, null)));
        await using var mesh = KubernetesTestHost.Create(server, s => s["Mesh:Kubernetes:Services:catalog:PortName"] = "admin");
        var source = await mesh.Services.GetRequiredService<ServiceEndpointResolver>().GetEndpointsAsync("http://catalog", CancellationToken.None);
        var endpoint = Assert.Single(source.Endpoints);
        Assert.Equal("http://10.1.0.1:9000/", endpoint.EndPoint.ToString());
        var feature = endpoint.Features.Get<MeshClient.Discovery.IMeshEndpointFeature>()!;
        Assert.Equal(("catalog-1", "zone-b", 1), (feature.Id, feature.Zone, feature.Weight));
        var kubernetes = endpoint.Features.Get<IKubernetesEndpointFeature>()!;
        Assert.Equal("node-7", kubernetes.NodeName);
        Assert.Equal(["zone-b", "zone-c"], kubernetes.ForZones);
        Assert.Equal("Kubernetes", source.Features.Get<MeshClient.Discovery.IMeshServiceFeature>()?.ProviderName);
    }

    [Fact]
    public async Task ThreeTo300EndpointsAcrossFourSlices_AndBack_EveryChangeWithin1Second()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        static PodEndpoint[] Range(int slice, int count) =>
            [.. Enumerable.Range(0, count).Select(i => new PodEndpoint($"catalog-{slice}-{i}", $"10.{slice}.{i / 250}.{(i % 250) + 1}"))];
        server.Apply("shop", Slices.Http("catalog", "catalog-0", 8080, Range(0, 3)));
        await using var mesh = KubernetesTestHost.Create(server);
        Assert.Equal(3, (await mesh.EndpointsAsync("catalog")).Count);

        // Scale out: the controller fills slices of up to 100 endpoints.
        server.Apply("shop", Slices.Http("catalog", "catalog-0", 8080, Range(0, 100)));
        server.Apply("shop", Slices.Http("catalog", "catalog-1", 8080, Range(1, 100)));
        server.Apply("shop", Slices.Http("catalog", "catalog-2", 8080, Range(2, 50)));
        server.Apply("shop", Slices.Http("catalog", "catalog-3", 8080, Range(3, 50)));
        var up = await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("catalog")).Count == 300, TimeSpan.FromSeconds(1), "300 endpoints within 1 s");

        // Scale in: three slices go, one shrinks.
        server.Delete("shop", "catalog-1");
        server.Delete("shop", "catalog-2");
        server.Delete("shop", "catalog-3");
        server.Apply("shop", Slices.Http("catalog", "catalog-0", 8080, Range(0, 3)));
        var down = await Eventually.TrueAsync(async () => (await mesh.EndpointsAsync("catalog")).Count == 3, TimeSpan.FromSeconds(1), "3 endpoints within 1 s");
        output.WriteLine($"3 -> 300 in {up.TotalMilliseconds:F0} ms, 300 -> 3 in {down.TotalMilliseconds:F0} ms");
        Assert.Equal(1, mesh.Cache.Find(new KubernetesServiceName("shop", "catalog"))!.Lists);
    }

    [Fact]
    public async Task PodTurningNotReady_GetsNoNewRequestAfter1Second()
    {
        await using var pods = await Pods.StartAsync(3);
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply("shop", Slices.Http("catalog", "catalog-a", pods.Port, [.. pods.All.Select(p => p.Endpoint())]));
        await using var mesh = KubernetesTestHost.Create(server);
        var client = mesh.CreateClient();
        await using var traffic = Traffic.Start(client, "http://catalog/", 200);
        await Eventually.TrueAsync(() => pods.All.All(p => p.Count > 5), TimeSpan.FromSeconds(5), "every pod serves");

        var sick = pods["pod-1"];
        server.Apply("shop", Slices.Http("catalog", "catalog-a", pods.Port, [.. pods.All.Select(p => p.Endpoint(ready: p != sick))]));
        var notReadyAt = TimeProvider.System.GetTimestamp();
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        await traffic.StopAsync();
        var last = TimeProvider.System.GetElapsedTime(notReadyAt, sick.LastRequest);
        output.WriteLine($"{traffic.Requests} requests, {traffic.Failures.Count} failed; the not-ready pod's last request came {last.TotalMilliseconds:F0} ms after it turned not ready");
        Assert.True(last < TimeSpan.FromSeconds(1), $"the not-ready pod got a request {last} after it turned not ready");
        Assert.Empty(traffic.Failures);
    }

    [Fact]
    public async Task WatchOfAServiceNoLongerUsed_EndsAfterTheIdlePeriod()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        server.Apply("shop", Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("catalog-1", "10.1.0.1")));
        var time = FakeTime.Create();
        // The watch request outlasts the test's fake minutes (the host's 30 s would renew it on the fake clock while the
        // test counts requests: a renewal is a new request, which the count below must not see).
        await using var mesh = KubernetesTestHost.Create(
            server,
            s =>
            {
                s["Mesh:Kubernetes:WatchIdleTimeout"] = "00:01:00";
                s["Mesh:Kubernetes:WatchTimeout"] = "00:10:00";
            },
            services => services.AddSingleton<TimeProvider>(time));
        var factory = mesh.Services.GetServices<IServiceEndpointProviderFactory>().OfType<KubernetesEndpointProviderFactory>().Single();

        var first = await PopulateAsync(factory, "catalog");
        Assert.Single(first.Builder.Endpoints);
        await Eventually.TrueAsync(() => server.ActiveWatches == 1, TimeSpan.FromSeconds(5), "the watch is open");
        await first.Provider.DisposeAsync();

        // Used again within the idle period: the same watch serves, with no new request.
        time.Advance(TimeSpan.FromSeconds(59));
        var requests = server.Requests.Count;
        var second = await PopulateAsync(factory, "catalog");
        Assert.Single(second.Builder.Endpoints);
        Assert.Equal(requests, server.Requests.Count);
        await second.Provider.DisposeAsync();

        time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(1, mesh.Cache.Count);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0, mesh.Cache.Count);
        Assert.Single(mesh.Events(416));
        await Eventually.TrueAsync(() => server.ActiveWatches == 0, TimeSpan.FromSeconds(5), "the ended watch's request is cancelled");
    }

    [Fact]
    public async Task ThousandEndpointAddRemoveCycles_LeaveNothingBehind()
    {
        const int Rounds = 10, PerRound = 100;
        await using var server = await KubernetesTestServer.CreateAsync();
        var stub = new StubEndpoints();
        server.Apply("shop", Slices.Http("catalog", "catalog-base", 8080, new PodEndpoint("base-1", "10.0.0.1"), new PodEndpoint("base-2", "10.0.0.2")));
        await using var mesh = KubernetesTestHost.Create(server, configure: services => services.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => stub));
        var client = mesh.CreateClient();
        await client.GetAsync("http://catalog/");
        var table = mesh.Host.Registry.GetTable("catalog");
        var watch = mesh.Cache.Find(new KubernetesServiceName("shop", "catalog"))!;

        for (var round = 0; round < Rounds; round++)
        {
            var added = Enumerable.Range(0, PerRound).Select(i => new PodEndpoint(string.Create(CultureInfo.InvariantCulture, $"churn-{round}-{i}"), string.Create(CultureInfo.InvariantCulture, $"10.{round + 1}.0.{i + 1}"))).ToArray();
            server.Apply("shop", Slices.Http("catalog", "catalog-churn", 8080, added));
            await Poll.UntilAsync(() => table.Snapshot?.All.Length == 2 + PerRound, TimeSpan.FromSeconds(5));
            for (var i = 0; i < 20; i++)
            {
                await client.GetAsync("http://catalog/");
            }

            server.Delete("shop", "catalog-churn");
            await Poll.UntilAsync(() => table.Snapshot?.All.Length == 2 && table.States.Count == 2, TimeSpan.FromSeconds(5));
        }

        Assert.Equal(2, table.States.Count);
        Assert.Equal(1, mesh.Cache.Count);
        Assert.Equal(1, watch.Lists);
        Assert.Equal(1, server.ActiveWatches);
        Assert.Equal(["base-1", "base-2"], watch.State.Instances.Select(i => i.Id));
        Assert.True(stub.Total >= Rounds * 20);
    }

    [Fact]
    public async Task EndpointsOutsideAllowedNetworks_AreDropped()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        var stub = new StubEndpoints();
        server.Apply("shop", Slices.Http("catalog", "catalog-a", 8080, new PodEndpoint("inside", "10.1.0.1"), new PodEndpoint("outside", "192.168.5.5")));
        await using var mesh = KubernetesTestHost.Create(
            server,
            s => s["Mesh:AllowedNetworks:0"] = "10.0.0.0/8",
            services => services.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => stub));
        var client = mesh.CreateClient();
        for (var i = 0; i < 10; i++)
        {
            (await client.GetAsync("http://catalog/")).EnsureSuccessStatusCode();
        }

        Assert.Equal(10, stub.Count("10.1.0.1:8080"));
        Assert.Equal(0, stub.Count("192.168.5.5:8080"));
        Assert.Equal(["inside"], mesh.Host.Registry.GetTable("catalog").States.Select(s => s.Id));
    }

    [Fact]
    public async Task InvalidOptions_FailAtStartup_NamingTheKey()
    {
        await using var server = await KubernetesTestServer.CreateAsync();
        await using var mesh = KubernetesTestHost.Create(server, s =>
        {
            s["Mesh:Kubernetes:Namespace"] = "Not_A_Namespace";
            s["Mesh:Kubernetes:ClusterDomain"] = "";
            s["Mesh:Kubernetes:KubeConfigPath"] = "/nonexistent/kubeconfig";
            s["Mesh:Kubernetes:WatchTimeout"] = "00:00:00";
            s["Mesh:Kubernetes:RetryMaxDelay"] = "forever";
            s["Mesh:Kubernetes:Services:catalog:PortName"] = "a b";
        });
        var error = Assert.Throws<OptionsValidationException>(() => mesh.Services.GetRequiredService<IOptions<KubernetesOptions>>().Value);
        output.WriteLine(error.Message);
        Assert.Contains("Mesh:Kubernetes:Namespace", error.Message, StringComparison.Ordinal);
        Assert.Contains("Mesh:Kubernetes:ClusterDomain", error.Message, StringComparison.Ordinal);
        Assert.Contains("Mesh:Kubernetes:KubeConfigPath", error.Message, StringComparison.Ordinal);
        Assert.Contains("Mesh:Kubernetes:WatchTimeout", error.Message, StringComparison.Ordinal);
        Assert.Contains("RetryMaxDelay", error.Message, StringComparison.Ordinal);
        Assert.Contains("Mesh:Kubernetes:Services:catalog:PortName", error.Message, StringComparison.Ordinal);
    }

    private static async Task<(IServiceEndpointProvider Provider, ConsulResilienceTests.TestEndpointBuilder Builder)> PopulateAsync(IServiceEndpointProviderFactory factory, string service)
    {
        Assert.True(ServiceEndpointQuery.TryParse("http://" + service, out var query));
        Assert.True(factory.TryCreateProvider(query!, out var provider));
        var builder = new ConsulResilienceTests.TestEndpointBuilder();
        await provider.PopulateAsync(builder, CancellationToken.None);
        return (provider, builder);
    }
}
