using System.Globalization;
using System.Net;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// <c>WeightedRoundRobin</c> (gRFC A58): weight = qps / (utilization + penalty × eps / qps) from the endpoints' own load
/// reports, used after a blackout, dropped after an expiration, the mean for endpoints without one, computed every
/// update period off the request path. Every timing rule on a FakeTimeProvider.
/// </summary>
public sealed class WeightedRoundRobinPolicyTests
{
    private static WeightedRoundRobinPolicy Policy(FakeTimeProvider time, Action<WeightedRoundRobinOptions>? configure = null)
    {
        var options = new WeightedRoundRobinOptions();
        configure?.Invoke(options);
        return new WeightedRoundRobinPolicy(options, null, time);
    }

    private static EndpointState Reporting(FakeTimeProvider time, double utilization, double qps, double eps = 0)
    {
        var state = new EndpointState("e");
        Report(state, time, utilization, qps, eps);
        return state;
    }

    private static void Report(EndpointState state, FakeTimeProvider time, double utilization, double qps, double eps = 0) =>
        state.GetOrCreateLoadReport().Record(new OrcaLoadReport(utilization, 0, 0, qps, eps), time.GetTimestamp());

    [Theory]
    [InlineData(0.5, 100, 0, 1.0, 200)]
    [InlineData(0.5, 100, 10, 1.0, 166.666667)] // 100 / (0.5 + 0.1)
    [InlineData(0.5, 100, 10, 0.0, 200)] // errors ignored
    [InlineData(0.5, 100, 10, 2.0, 142.857143)] // 100 / (0.5 + 0.2)
    [InlineData(2.0, 100, 0, 1.0, 50)] // over its soft limit
    public void Weight_IsQpsOverUtilizationPlusTheErrorPenalty(double utilization, double qps, double eps, double penalty, double expected)
    {
        var time = FakeTime.Create();
        var policy = Policy(time, o => (o.BlackoutPeriod, o.ErrorUtilizationPenalty) = (TimeSpan.Zero, penalty));
        Assert.Equal(expected, policy.Weight(Reporting(time, utilization, qps, eps), time.GetTimestamp()), 5);
    }

    [Fact]
    public void ApplicationUtilization_WinsOverCpuUtilization_WhenSet()
    {
        var time = FakeTime.Create();
        var policy = Policy(time, o => o.BlackoutPeriod = TimeSpan.Zero);
        var state = new EndpointState("e");
        state.GetOrCreateLoadReport().Record(new OrcaLoadReport(CpuUtilization: 0.9, 0, ApplicationUtilization: 0.25, RpsFractional: 50, 0), time.GetTimestamp());
        Assert.Equal(200, policy.Weight(state, time.GetTimestamp()), 6);
    }

    [Fact]
    public void Blackout_AWeightIsUsedOnlyAfterTheEndpointReportedForTenSeconds()
    {
        var time = FakeTime.Create();
        var policy = Policy(time);
        var state = Reporting(time, 0.5, 100);
        Assert.Equal(0, policy.Weight(state, time.GetTimestamp()));
        time.Advance(TimeSpan.FromSeconds(9.9));
        Report(state, time, 0.5, 100);
        Assert.Equal(0, policy.Weight(state, time.GetTimestamp()));
        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(200, policy.Weight(state, time.GetTimestamp()), 6);
    }

    [Fact]
    public void Expiration_ThreeMinutesAfterTheLastReport_TheWeightGoes_AndTheNextReportServesANewBlackout()
    {
        var time = FakeTime.Create();
        var policy = Policy(time);
        var state = Reporting(time, 0.5, 100);
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(200, policy.Weight(state, time.GetTimestamp()), 6);
        time.Advance(TimeSpan.FromMinutes(3) - TimeSpan.FromSeconds(10) - TimeSpan.FromTicks(1));
        Assert.Equal(200, policy.Weight(state, time.GetTimestamp()), 6); // 3 min less a tick after the report
        time.Advance(TimeSpan.FromTicks(1));
        Assert.Equal(0, policy.Weight(state, time.GetTimestamp()));

        Report(state, time, 0.25, 100); // reports again: a new blackout
        Assert.Equal(0, policy.Weight(state, time.GetTimestamp()));
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(400, policy.Weight(state, time.GetTimestamp()), 6);
    }

    [Fact]
    public void EndpointsWithoutAWeight_GetTheMean_AndWithFewerThanTwoWeights_TheConfiguredWeightsApply()
    {
        var time = FakeTime.Create();
        var policy = Policy(time, o => o.BlackoutPeriod = TimeSpan.Zero);
        var active = new[]
        {
            SnapshotFactory.Entry("http://10.0.0.1:80", 1, state: Reporting(time, 0.5, 100)), // 200
            SnapshotFactory.Entry("http://10.0.0.2:80", 1, state: Reporting(time, 1.0, 100)), // 100
            SnapshotFactory.Entry("http://10.0.0.3:80", 1), // no report: the mean, 150
        };
        Assert.Equal(new long[] { 100, 50, 75 }, policy.Weights(active, slowStart: null));

        // Slow start still scales: the third at 40% of its (mean) weight.
        Assert.Equal(new long[] { 100, 50, 30 }, policy.Weights(active, slowStart: [1000, 1000, 400]));

        // One endpoint with a weight is too little to weigh by (A58): the configured weights, as round robin.
        var alone = new[] { active[0], active[2] };
        Assert.Null(policy.Weights(alone, slowStart: null));
        Assert.Equal(new long[] { 1000, 400 }, policy.Weights(alone, slowStart: [1000, 400]));
    }

    [Fact]
    public void Options_AServiceOverridesTheGlobalValues_AndUnsetValuesTakeGrpcsDefaults()
    {
        var time = FakeTime.Create();
        var global = new WeightedRoundRobinOptions { BlackoutPeriod = TimeSpan.FromSeconds(30), WeightUpdatePeriod = TimeSpan.FromSeconds(5) };
        var service = new WeightedRoundRobinOptions { BlackoutPeriod = TimeSpan.Zero };
        var policy = new WeightedRoundRobinPolicy(global, service, time);
        Assert.Equal(TimeSpan.Zero, policy.BlackoutPeriod);
        Assert.Equal(TimeSpan.FromSeconds(5), policy.UpdatePeriod);
        Assert.Equal(TimeSpan.FromMinutes(3), policy.WeightExpirationPeriod);

        var defaults = new WeightedRoundRobinPolicy(new WeightedRoundRobinOptions(), null, time);
        Assert.Equal((TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(3), TimeSpan.FromSeconds(1)), (defaults.BlackoutPeriod, defaults.WeightExpirationPeriod, defaults.UpdatePeriod));
    }

    [Fact]
    public async Task TheWeights_FollowTheReports_RecomputedEveryUpdatePeriod_AndThePicksFollowThem()
    {
        var time = FakeTime.Create();
        var (host, stub) = StubEndpoints.CreateHost(time, s => s["Mesh:Services:catalog:LoadBalancer"] = LoadBalancerNames.WeightedRoundRobin);
        await using var _ = host;
        var utilization = new[] { 0.4, 0.4, 0.4, 0.8 }; // the fourth endpoint is twice as busy for the same rate
        for (var i = 0; i < 4; i++)
        {
            var index = i;
            stub.Behaviors[$"10.0.0.{i + 1}:8080"] = (_, _) =>
            {
                var response = new HttpResponseMessage(HttpStatusCode.OK);
                response.Headers.TryAddWithoutValidation("endpoint-load-metrics", string.Create(CultureInfo.InvariantCulture, $"TEXT cpu_utilization={utilization[index]}, rps_fractional=100"));
                return Task.FromResult(response);
            };
        }

        var client = host.CreateClient();
        var table = host.Registry.GetTable("catalog");
        await SendAsync(client, 8); // every endpoint reports (round robin until weights are known)
        Assert.Equal(new long[] { 1, 1, 1, 1 }, table.Snapshot!.Weights);

        // The blackout (10 s): the snapshot is rebuilt every second, with the configured weights until it ends.
        for (var second = 1; second < 10; second++)
        {
            var built = table.SnapshotsBuilt;
            await AdvanceAsync(time, TimeSpan.FromSeconds(1));
            Assert.True(table.SnapshotsBuilt > built, $"no rebuild in second {second}");
            await SendAsync(client, 4);
            Assert.Equal(new long[] { 1, 1, 1, 1 }, table.Snapshot!.Weights);
        }

        await AdvanceAsync(time, TimeSpan.FromSeconds(1));
        Assert.Equal(new long[] { 100, 100, 100, 50 }, table.Snapshot!.Weights);

        // The picks follow the weights exactly: 2:2:2:1 over every 7 calls.
        stub.Reset();
        await SendAsync(client, 700);
        Assert.Equal(new[] { 200, 200, 200, 100 }, Enumerable.Range(1, 4).Select(i => stub.Count($"10.0.0.{i}:8080")));

        // The fourth endpoint's load falls: its new reports count at the next update, not before.
        utilization[3] = 0.4;
        await SendAsync(client, 14);
        await AdvanceAsync(time, TimeSpan.FromMilliseconds(999));
        Assert.Equal(new long[] { 100, 100, 100, 50 }, table.Snapshot!.Weights);
        await AdvanceAsync(time, TimeSpan.FromMilliseconds(1));
        Assert.Equal(new long[] { 100, 100, 100, 100 }, table.Snapshot!.Weights);

        // Reports stop (3 min): the weights expire and round robin by the configured weights takes over.
        stub.Behaviors.Clear();
        await AdvanceAsync(time, TimeSpan.FromMinutes(3));
        Assert.Equal(new long[] { 1, 1, 1, 1 }, table.Snapshot!.Weights);
    }

    [Fact]
    public async Task AnEndpointReadmittedAfterAnEjection_ServesANewBlackout_WithTheMeanWeightMeanwhile()
    {
        var time = FakeTime.Create();
        var (host, stub) = StubEndpoints.CreateHost(time, s => s["Mesh:Services:catalog:LoadBalancer"] = LoadBalancerNames.WeightedRoundRobin);
        await using var _ = host;
        var refuse = 0;
        for (var i = 0; i < 4; i++)
        {
            var utilization = i == 3 ? "0.8" : "0.4";
            var last = i == 3;
            stub.Behaviors[$"10.0.0.{i + 1}:8080"] = (_, _) =>
            {
                var response = new HttpResponseMessage(last && Interlocked.Exchange(ref refuse, 0) == 1 ? HttpStatusCode.ServiceUnavailable : HttpStatusCode.OK);
                response.Headers.TryAddWithoutValidation("endpoint-load-metrics", $"TEXT cpu_utilization={utilization}, rps_fractional=100");
                if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(2));
                }

                return Task.FromResult(response);
            };
        }

        var client = host.CreateClient();
        var table = host.Registry.GetTable("catalog");
        await SendAsync(client, 8);
        var fourth = table.States.Single(s => s.Id.Contains("10.0.0.4", StringComparison.Ordinal));
        for (var second = 0; second < 10; second++)
        {
            await AdvanceAsync(time, TimeSpan.FromSeconds(1));
            await SendAsync(client, 4);
        }

        Assert.Equal(new long[] { 100, 100, 100, 50 }, table.Snapshot!.Weights);

        // It asks for 2 s off (Retry-After), then its probe succeeds: readmitted, its weight waits a new blackout.
        Volatile.Write(ref refuse, 1);
        await Poll.UntilAsync(async () =>
        {
            await SendAsync(client, 1);
            return fourth.Status == EndpointStatus.Ejected;
        });
        await AdvanceAsync(time, TimeSpan.FromSeconds(2));
        await Poll.UntilAsync(async () =>
        {
            await SendAsync(client, 1);
            return fourth.Status == EndpointStatus.Healthy;
        });
        await AdvanceAsync(time, TimeSpan.FromSeconds(1)); // the next update
        Assert.Equal(new long[] { 100, 100, 100, 100 }, table.Snapshot!.Weights); // the mean (250) until its blackout ends

        for (var second = 0; second < 10; second++)
        {
            await SendAsync(client, 8);
            await AdvanceAsync(time, TimeSpan.FromSeconds(1));
        }

        Assert.Equal(new long[] { 100, 100, 100, 50 }, table.Snapshot!.Weights);
    }

    [Fact]
    public async Task OtherPolicies_DoNotReadTheReports()
    {
        var time = FakeTime.Create();
        var (host, stub) = StubEndpoints.CreateHost(time, _ => { });
        await using var _ = host;
        stub.Behaviors["10.0.0.1:8080"] = (_, _) =>
        {
            var response = new HttpResponseMessage(HttpStatusCode.OK);
            response.Headers.TryAddWithoutValidation("endpoint-load-metrics", "TEXT cpu_utilization=0.5, rps_fractional=100");
            return Task.FromResult(response);
        };
        await SendAsync(host.CreateClient(), 8);
        Assert.All(host.Registry.GetTable("catalog").States, s => Assert.Null(s.LoadReport));
    }

    private static async Task SendAsync(HttpClient client, int count)
    {
        for (var i = 0; i < count; i++)
        {
            using var response = await client.GetAsync("http://catalog/");
            response.EnsureSuccessStatusCode();
        }
    }

    private static async Task AdvanceAsync(FakeTimeProvider time, TimeSpan by)
    {
        // In steps of at most a second, so that the update timer (re-armed by each rebuild) fires at each period.
        while (by > TimeSpan.Zero)
        {
            var step = by < TimeSpan.FromSeconds(1) ? by : TimeSpan.FromSeconds(1);
            time.Advance(step);
            by -= step;
            await Task.Yield();
        }
    }
}
