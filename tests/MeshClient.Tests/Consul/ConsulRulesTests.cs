using MeshClient.Consul;
using MeshClient.ConsulServer;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Consul;

/// <summary>The blocking-query index rules, the client timeout, and backoff timing on a fake clock (no sleeps).</summary>
public sealed class ConsulRulesTests
{
    [Theory]
    [InlineData(0UL, 42UL, 42UL)]   // first answer
    [InlineData(42UL, 42UL, 42UL)]  // timeout: same index
    [InlineData(42UL, 57UL, 57UL)]  // a change
    [InlineData(42UL, 7UL, 0UL)]    // went backwards: reset, the next query does not block
    [InlineData(0UL, 0UL, 1UL)]     // never below 1
    [InlineData(1UL, 0UL, 1UL)]     // a 0 (Consul bug) is read as 1, not as "backwards"
    [InlineData(42UL, 0UL, 0UL)]    // ...but 1 < 42 still went backwards
    public void NextIndex_FollowsTheDocumentedRules(ulong previous, ulong returned, ulong expected) =>
        Assert.Equal(expected, ConsulBlockingRules.NextIndex(previous, returned));

    [Theory]
    [InlineData(1)]
    [InlineData(30)]
    [InlineData(300)]
    [InlineData(600)]
    public void ClientTimeout_ExceedsWaitPlusItsSixteenthPlusAMargin(int waitSeconds)
    {
        var wait = TimeSpan.FromSeconds(waitSeconds);
        var timeout = ConsulBlockingRules.ClientTimeout(wait);
        Assert.True(timeout > wait + (wait / 16) + TimeSpan.FromSeconds(5), $"{timeout} for wait {wait}");
    }

    [Fact]
    public void ClientTimeout_CoversConsulsTenMinuteCap_AndTheHttpClientTimeoutCoversEveryWait()
    {
        Assert.True(ConsulBlockingRules.ClientTimeout(TimeSpan.FromMinutes(10)) >= TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(37.5));
        Assert.Equal(ConsulBlockingRules.ClientTimeout(TimeSpan.FromMinutes(10)), ConsulBlockingRules.ClientTimeout(TimeSpan.FromHours(1)));
    }

    [Theory]
    [InlineData(300_000, "300000ms")]
    [InlineData(1.5, "2ms")]
    [InlineData(0.1, "1ms")]
    public void Wait_IsSentAsAGoDurationInMilliseconds(double milliseconds, string expected) =>
        Assert.Equal(expected, ConsulBlockingRules.FormatWait(TimeSpan.FromMilliseconds(milliseconds)));

    [Fact]
    public void RetryDelay_DoublesUpToTheCap_WithEqualJitter()
    {
        var baseDelay = TimeSpan.FromSeconds(1);
        var max = TimeSpan.FromSeconds(8);
        var low = new FixedRandomizer(0);
        var high = new FixedRandomizer(0.999999);
        double[] full = [1, 2, 4, 8, 8, 8];
        for (var i = 0; i < full.Length; i++)
        {
            Assert.Equal(full[i] / 2, ConsulBlockingRules.RetryDelay(i + 1, baseDelay, max, low).TotalSeconds, 3);
            Assert.Equal(full[i], ConsulBlockingRules.RetryDelay(i + 1, baseDelay, max, high).TotalSeconds, 3);
        }

        Assert.Equal(8, ConsulBlockingRules.RetryDelay(10_000, baseDelay, max, high).TotalSeconds, 3);
        Assert.Equal(TimeSpan.Zero, ConsulBlockingRules.RetryDelay(0, baseDelay, max, high));
    }

    [Fact]
    public async Task FailedQueries_AreRetriedAfterTheBackoffDelay_OnTheInjectedClock_AndSuccessResetsIt()
    {
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Faults.Inject(ConsulFault.NoClusterLeader, "/v1/health/");
        var time = new FakeTimeProvider();
        await using var mesh = ConsulTestHost.Create(consul, s =>
        {
            s["Mesh:Consul:RetryBaseDelay"] = "00:00:01";
            s["Mesh:Consul:RetryMaxDelay"] = "00:00:08";
        }, services =>
        {
            services.AddSingleton<TimeProvider>(time);
            services.Replace(ServiceDescriptor.Singleton<Randomizer>(new FixedRandomizer(0.5)));
        });
        var watch = mesh.Cache.Acquire("web");
        await watch.FirstAttempt;

        // Equal jitter at 0.5: 3/4 of 1, 2, 4, 8, 8 seconds.
        double[] expected = [0.75, 1.5, 3, 6, 6];
        for (var i = 0; i < expected.Length; i++)
        {
            await Eventually.TrueAsync(() => watch.RetriesScheduled == i + 1, TimeSpan.FromSeconds(5), $"retry {i + 1} is scheduled");
            Assert.Equal(TimeSpan.FromSeconds(expected[i]), watch.LastRetryDelay);
            var queries = watch.Queries;
            time.Advance(TimeSpan.FromSeconds(expected[i]) - TimeSpan.FromMilliseconds(1));
            Assert.Equal(queries, watch.Queries);
            time.Advance(TimeSpan.FromMilliseconds(1));
            await Eventually.TrueAsync(() => watch.Queries == queries + 1, TimeSpan.FromSeconds(5), $"query {queries + 1} is sent once the delay is over");
        }

        // Consul answers again: the failure count resets, so the next failure waits the base delay again.
        await Eventually.TrueAsync(() => watch.RetriesScheduled == expected.Length + 1, TimeSpan.FromSeconds(5), "the last failure is handled");
        consul.Faults.Clear();
        time.Advance(watch.LastRetryDelay);
        await Eventually.TrueAsync(() => watch.State.HasAnswer && consul.WaitingQueries == 1, TimeSpan.FromSeconds(5), "the watch recovers and blocks");
        consul.Faults.Inject(ConsulFault.NoClusterLeader, "/v1/health/");
        consul.DropWaitingQueries();
        await Eventually.TrueAsync(() => watch.RetriesScheduled == expected.Length + 2, TimeSpan.FromSeconds(5), "the new failure is handled");
        Assert.Equal(TimeSpan.FromSeconds(0.75), watch.LastRetryDelay);
        mesh.Cache.Release(watch);
    }
}
