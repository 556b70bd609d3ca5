using System.Globalization;
using System.Net;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// Services with many endpoints: exact shares at 10,000 endpoints weighted 1–100, no snapshot rebuilt when nothing
/// changed, and none rebuilt on the thread of the request whose outcome ejected an endpoint.
/// </summary>
public sealed class LargeServiceTests
{
    private const int Endpoints = 10_000;

    public static TheoryData<string> Policies => new() { LoadBalancerNames.RoundRobin, LoadBalancerNames.Random, LoadBalancerNames.LeastRequest, LoadBalancerNames.PeakEwma };

    private static EndpointSnapshot LargeSnapshot(LoadBalancingPolicy policy)
    {
        var entries = new EndpointEntry[Endpoints];
        for (var i = 0; i < Endpoints; i++)
        {
            entries[i] = SnapshotFactory.Entry(string.Create(CultureInfo.InvariantCulture, $"http://10.{i / 65536}.{i / 256 % 256}.{i % 256}:8080"), 1 + (i % 100));
        }

        return new EndpointSnapshot("svc", entries, entries, policy, panic: false, roundRobinStart: 0);
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void TenThousandEndpointsWeighted1To100_EveryWeightGetsItsShare(string name)
    {
        var policy = LoadBalancingPolicy.Create(name, new MeshOptions(), TimeProvider.System);
        var snapshot = LargeSnapshot(policy);
        var random = new SeededRandomizer(7);

        // Ten periods of the weight sum (100 × 5,050): each weight w is held by 100 endpoints and expects 1,000 w picks.
        const int WeightSum = 100 * 5050, Picks = 10 * WeightSum;
        var byWeight = new long[101];
        var byEndpoint = new Dictionary<EndpointEntry, int>(Endpoints);
        for (var i = 0; i < Picks; i++)
        {
            var picked = policy.Pick(snapshot, random, context: null)!;
            byWeight[picked.Weight]++;
            byEndpoint[picked] = byEndpoint.GetValueOrDefault(picked) + 1;
        }

        for (var w = 1; w <= 100; w++)
        {
            var expected = 1000.0 * w;
            var share = byWeight[w] / (double)Picks;
            Assert.True(Math.Abs(share - (expected / Picks)) <= 0.01, $"{name}: weight {w} got {share:P3}, expected {expected / Picks:P3}");

            // ±1 point is loose for a weight holding 0.02% of the traffic: its own share must be within ±12% too
            // (the scaled schedule gave weight-1 endpoints 8.2 times theirs; a weighted draw is within ±12% with p > 0.999).
            Assert.True(Math.Abs(byWeight[w] - expected) <= 0.12 * expected, $"{name}: weight {w} got {byWeight[w] / expected:F2} times its share");
        }

        if (name == LoadBalancerNames.RoundRobin)
        {
            // Exact over every period of the weight sum: each endpoint 10 × its weight.
            Assert.All(snapshot.Active, e => Assert.Equal(10 * e.Weight, byEndpoint.GetValueOrDefault(e)));
        }
    }

    [Fact]
    public void RoundRobin_OverAWeightSumTooLargeForASchedule_IsExactAndNeverPicksAnEndpointTwiceInARow()
    {
        var snapshot = SnapshotFactory.Snapshot(RoundRobinPolicy.Instance, 65535, 65535, 1, 30000);
        Assert.Empty(snapshot.RoundRobinSequence);

        var order = new int[65535 + 65535 + 1 + 30000];
        var counts = new int[4];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = Array.IndexOf(snapshot.Active, RoundRobinPolicy.Instance.Pick(snapshot, new SeededRandomizer(1), null));
            counts[order[i]]++;
        }

        Assert.Equal([65535, 65535, 1, 30000], counts);
        Assert.DoesNotContain(Enumerable.Range(1, order.Length - 1), i => order[i] == order[i - 1] && order[i] == 3);
    }

    [Fact]
    public async Task PeriodicRefreshWithoutAChange_BuildsNoSnapshot_WhileAChangeStillDoes()
    {
        var time = FakeTime.Create();
        var (host, _) = StubEndpoints.CreateHost(time, _ => { });
        await using var __ = host;
        var client = host.CreateClient();
        (await client.GetAsync("http://catalog/")).Dispose();
        var table = host.Registry.GetTable("catalog");
        var snapshot = table.Snapshot;
        var built = table.SnapshotsBuilt;

        // In use across six refresh ticks (5 s): each tick refreshes discovery, which answers the same.
        for (var tick = 0; tick < 6; tick++)
        {
            (await client.GetAsync("http://catalog/")).Dispose();
            time.Advance(ServiceTableRegistry.RefreshInterval);
            await Task.Delay(20);
        }

        Assert.Same(snapshot, table.Snapshot);
        Assert.Equal(built, table.SnapshotsBuilt);

        // A change of policy (same endpoints) is a change.
        var settings = StubEndpoints.Settings("catalog", LoadBalancerNames.Random, 4);
        host.Configuration.Replace(settings);
        await Poll.UntilAsync(() => table.Snapshot!.Policy.Name == LoadBalancerNames.Random);
        Assert.Equal(4, table.Snapshot!.All.Length);
    }

    [Fact]
    public async Task PeriodicRefreshWithoutAChange_BuildsNoEndpointEntries_WhileAChangeStillDoes()
    {
        var time = FakeTime.Create();
        var (host, _) = StubEndpoints.CreateHost(time, _ => { });
        await using var __ = host;
        var client = host.CreateClient();
        (await client.GetAsync("http://catalog/")).Dispose();
        var table = host.Registry.GetTable("catalog");
        var entries = table.Entries;
        Assert.Same(table.Snapshot!.All, entries);

        // Six refresh ticks of a service in use, discovery answering the same: the entries (and their strings) are not
        // built again, so the snapshot and the table keep sharing one set (before: a new set every 5 s, the old one
        // still held by the snapshot).
        for (var tick = 0; tick < 6; tick++)
        {
            (await client.GetAsync("http://catalog/")).Dispose();
            time.Advance(ServiceTableRegistry.RefreshInterval);
            await Poll.UntilAsync(() => table.Discovery!.Refreshed == time.GetUtcNow());
        }

        Assert.Same(entries, table.Entries);
        Assert.Same(entries, table.Snapshot!.All);

        // A change of endpoints is still applied, and the snapshot takes the new entries.
        host.Configuration.Replace(StubEndpoints.Settings("catalog", LoadBalancerNames.RoundRobin, 5));
        await Poll.UntilAsync(() => table.Snapshot!.All.Length == 5);
        Assert.Same(table.Entries, table.Snapshot!.All);
        Assert.NotSame(entries, table.Entries);
    }

    [Fact]
    public async Task AnEjectionDecidedByARequestsOutcome_IsPublishedOffThatRequestsThread()
    {
        var time = FakeTime.Create();
        var (host, _) = StubEndpoints.CreateHost(time, _ => { });
        await using var __ = host;
        (await host.CreateClient().GetAsync("http://catalog/")).Dispose();
        var table = host.Registry.GetTable("catalog");
        var snapshot = table.Snapshot!;
        var bad = snapshot.All.Single(e => e.Address.Contains("10.0.0.4", StringComparison.Ordinal));
        var built = table.SnapshotsBuilt;

        // Holding the table lock keeps any rebuild but one on this very thread (the lock is reentrant) waiting.
        lock (table.HealthLock)
        {
            for (var i = 0; i < 5; i++)
            {
                Assert.True(bad.State.TryAdmit(panic: false, unreachableAdmitted: false, out _));
                table.RecordOutcome(snapshot, bad, time.GetTimestamp(), AttemptOutcome.Failure, wasProbe: false);
                bad.State.OnAttemptEnded();
            }

            Assert.Equal(EndpointStatus.Ejected, bad.State.Status);
            Assert.Same(snapshot, table.Snapshot); // the request's thread did not rebuild it …
            Assert.Equal(built, table.SnapshotsBuilt);
            Assert.False(bad.State.TryAdmit(panic: false, unreachableAdmitted: false, out _)); // … and the old snapshot's pick is refused meanwhile
        }

        // … the thread pool did, once the lock was free.
        await Poll.UntilAsync(() => !table.Snapshot!.Active.Contains(bad));
        Assert.Equal(built + 1, table.SnapshotsBuilt);
        Assert.Equal(HttpStatusCode.OK, (await host.CreateClient().GetAsync("http://catalog/")).StatusCode);
    }
}
