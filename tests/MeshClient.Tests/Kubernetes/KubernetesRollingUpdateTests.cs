using MeshClient.KubernetesServer;
using Xunit.Abstractions;

namespace MeshClient.Tests.Kubernetes;

/// <summary>Traffic through a real IHttpClientFactory to real pods while a Deployment rolls.</summary>
public sealed class KubernetesRollingUpdateTests(ITestOutputHelper output)
{
    private const string Ns = "shop";

    [Fact]
    public async Task RollingUpdate_Under200RequestsPerSecond_NoFailedRequestAndNoRequestToARemovedPod()
    {
        await using var pods = await Pods.StartAsync(3);
        await using var server = await KubernetesTestServer.CreateAsync();
        var live = new List<Pod> { pods["pod-0"], pods["pod-1"], pods["pod-2"] };
        var terminating = new List<Pod>();
        void Write() => server.Apply(Ns, Slices.Http("catalog", "catalog-x7k2p", pods.Port,
            [.. live.Select(p => p.Endpoint()), .. terminating.Select(p => p.Endpoint(ready: false, serving: true, terminating: true))]));
        Write();

        await using var mesh = KubernetesTestHost.Create(server);
        var client = mesh.CreateClient();
        Assert.StartsWith("pod-", await client.GetStringAsync("http://catalog/"), StringComparison.Ordinal);

        var traffic = Traffic.Start(client, "http://catalog/", 200);

        // Pods replaced one by one: a new one becomes ready, an old one turns terminating (it keeps serving during
        // its grace period), then it leaves the slice, then its process stops.
        var step = TimeSpan.FromMilliseconds(400);
        var afterRemoval = new List<(string Pod, TimeSpan KeptTraffic, TimeSpan AfterTerminating)>();
        await Task.Delay(step);
        for (var i = 0; i < 3; i++)
        {
            var fresh = await pods.AddAsync("pod-" + (3 + i).ToString(System.Globalization.CultureInfo.InvariantCulture));
            live.Add(fresh);
            Write();
            await Task.Delay(step);

            var old = live[0];
            live.RemoveAt(0);
            terminating.Add(old);
            Write();
            var terminatingAt = TimeProvider.System.GetTimestamp();
            await Task.Delay(step);

            terminating.Remove(old);
            Write();
            var removedAt = TimeProvider.System.GetTimestamp();
            await Task.Delay(step);
            var last = old.LastRequest;
            await pods.RemoveAsync(old.Name);
            afterRemoval.Add((old.Name,
                last > removedAt ? TimeProvider.System.GetElapsedTime(removedAt, last) : TimeSpan.Zero,
                last > terminatingAt ? TimeProvider.System.GetElapsedTime(terminatingAt, last) : TimeSpan.Zero));
        }

        await Task.Delay(step);
        await traffic.DisposeAsync();
        var (requests, failures) = (traffic.Requests, traffic.Failures);

        var longest = afterRemoval.Max(r => r.KeptTraffic);
        var longestAfterTerminating = afterRemoval.Max(r => r.AfterTerminating);
        output.WriteLine($"rolling update: {requests} requests, {failures.Count} failed; longest time a removed pod kept traffic after its removal: {longest.TotalMilliseconds:F0} ms; " +
            $"longest time a terminating pod kept getting requests after turning terminating: {longestAfterTerminating.TotalMilliseconds:F0} ms; new pods served {string.Join(", ", live.Select(p => $"{p.Name}={p.Count}"))}");
        Assert.Empty(failures);
        Assert.InRange(requests, 400, 100_000);
        Assert.Equal(TimeSpan.Zero, longest);
        Assert.True(longestAfterTerminating < TimeSpan.FromSeconds(1), $"a terminating pod got requests {longestAfterTerminating} after it turned terminating");
        Assert.All(live, p => Assert.True(p.Count > 0, $"{p.Name} got no traffic"));
    }
}
