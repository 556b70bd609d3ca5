using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// The spill rule of zone routing (<see cref="ZoneBalance"/>, <see cref="ZoneView"/>) on a FakeTimeProvider: latency
/// samples are fed to the endpoints as the policy would record them, and the balance is updated every 100 ms of fake
/// time. Defaults: spilling starts at a latency ratio of 2.5 and is full at 5.
/// </summary>
public sealed class ZoneBalanceTests
{
    private const string Zone = "zone-a";
    private static readonly TimeSpan Step = ZoneBalance.UpdateInterval;

    /// <summary>Two endpoints in the caller's zone and two in another, as one service with zone routing on.</summary>
    private sealed class Service
    {
        public Service(string policy = LoadBalancerNames.RoundRobin, Func<EndpointEntry[], EndpointEntry[]>? active = null, TimeSpan? rampingFor = null)
        {
            Frequency = Time.TimestampFrequency;
            Policy = LoadBalancingPolicy.Create(policy, new MeshOptions(), Time);
            Entries =
            [
                SnapshotFactory.Entry("http://10.0.0.1:80", 1, Zone),
                SnapshotFactory.Entry("http://10.0.0.2:80", 1, Zone),
                SnapshotFactory.Entry("http://10.0.1.1:80", 1, "zone-b"),
                SnapshotFactory.Entry("http://10.0.1.2:80", 1, "zone-b"),
            ];
            Balance = new ZoneBalance(Zone, Time.TimestampFrequency);
            if (rampingFor is { } ramping)
            {
                // The second local endpoint readmitted this long ago, in a 10 s slow start.
                Entries[1].State.SlowStartSince = Time.GetTimestamp() - (long)(ramping.TotalSeconds * Time.TimestampFrequency);
            }

            Snapshot = new EndpointSnapshot("svc", Entries, active?.Invoke(Entries) ?? Entries, Policy, panic: false, roundRobinStart: 0, weights: null, Context(Balance));
        }

        public FakeTimeProvider Time { get; } = FakeTime.Create();

        /// <summary>The service's zone routing (defaults) with a 10 s slow start.</summary>
        public ZoneContext Context(ZoneBalance balance) =>
            new(ZoneRoutingSettings.Resolve(new MeshOptions { Zone = Zone }, null)!, balance, new SlowStartRamp(TimeSpan.FromSeconds(10), 1.0, 10), Time.GetTimestamp(), Time.TimestampFrequency);

        public double Frequency { get; }

        public LoadBalancingPolicy Policy { get; }

        public EndpointEntry[] Entries { get; }

        public ZoneBalance Balance { get; }

        public EndpointSnapshot Snapshot { get; }

        public ZoneView Zones => Snapshot.Zones!;

        public IEnumerable<EndpointEntry> Local => Entries.Take(2);

        public IEnumerable<EndpointEntry> Remote => Entries.Skip(2);

        /// <summary>
        /// Runs <paramref name="duration"/> of fake time: each 100 ms, each local endpoint answers
        /// <paramref name="localCalls"/> calls in <paramref name="localMs"/> and each remote one
        /// <paramref name="remoteCalls"/> in <paramref name="remoteMs"/>; then the balance updates. Returns the spill
        /// after every update.
        /// </summary>
        public List<double> Run(TimeSpan duration, double localMs, double remoteMs, int localCalls = 50, int remoteCalls = 5)
        {
            var spills = new List<double>();
            for (var t = TimeSpan.Zero; t < duration; t += Step)
            {
                foreach (var e in Local)
                {
                    for (var i = 0; i < localCalls; i++)
                    {
                        e.State.AddZoneSample(localMs / 1000 * Frequency);
                    }
                }

                foreach (var e in Remote)
                {
                    for (var i = 0; i < remoteCalls; i++)
                    {
                        e.State.AddZoneSample(remoteMs / 1000 * Frequency);
                    }
                }

                Time.Advance(Step);
                Balance.MaybeUpdate(Time.GetTimestamp(), Zones);
                spills.Add(Balance.Spill);
            }

            return spills;
        }

        /// <summary>Draws <paramref name="picks"/> views with <see cref="ZoneView.Choose"/> (time stands still) and returns the share that was the zone's.</summary>
        public double LocalViewShare(int picks, MeshRequestContext? context = null)
        {
            var local = 0;
            var random = new SeededRandomizer(5);
            for (var i = 0; i < picks; i++)
            {
                local += ReferenceEquals(Zones.Choose(Snapshot, context, Time.GetTimestamp(), random), Zones.Local) ? 1 : 0;
            }

            return local / (double)picks;
        }
    }

    [Fact]
    public void EqualLatency_NothingSpills_AndPicksStayInTheZone()
    {
        var service = new Service();
        var spills = service.Run(TimeSpan.FromSeconds(10), localMs: 1, remoteMs: 1);

        Assert.All(spills, s => Assert.Equal(0, s));
        Assert.Equal(1.0, service.LocalViewShare(1000));
        Assert.Equal(1.0, service.Balance.Read().Ratio!.Value, 3);
    }

    [Fact]
    public void ZoneThreeTimesSlower_SpillSettlesInProportion_BetweenTheStartAndFullRatios()
    {
        var service = new Service();
        service.Run(TimeSpan.FromSeconds(2), localMs: 1, remoteMs: 1);
        var spills = service.Run(TimeSpan.FromSeconds(6), localMs: 3, remoteMs: 1);

        // (3 − 2.5) / (5 − 2.5) = 0.2, reached smoothly (never above it), and the picks follow it.
        Assert.Equal(0.2, spills[^1], 2);
        Assert.All(spills, s => Assert.InRange(s, 0, 0.2 + 1e-9));
        Assert.InRange(service.LocalViewShare(10_000), 0.77, 0.83);
    }

    [Fact]
    public void ZoneTenTimesSlower_EverythingSpillsWithinAFewRiseTimes_ThenComesBackWhenItEases()
    {
        var service = new Service();
        service.Run(TimeSpan.FromSeconds(2), localMs: 1, remoteMs: 1);

        var rising = service.Run(TimeSpan.FromSeconds(3), localMs: 10, remoteMs: 1);
        Assert.True(rising[4] is > 0.1 and < 0.9, $"after 0.5 s the spill was {rising[4]:F2}: it should be rising, not there yet");
        var full = rising.FindIndex(s => s == 1.0);
        Assert.InRange(full, 10, 30); // within 1 to 3 s (ln 100 × 500 ms = 2.3 s, less while the zone's mean rises)
        Assert.Equal(0.0, service.LocalViewShare(1000));

        // Eased: the spill falls more slowly than it rose (2 s time constant), and is gone within about 10 s.
        var falling = service.Run(TimeSpan.FromSeconds(12), localMs: 1, remoteMs: 1);
        Assert.True(falling[9] > 0.4, $"1 s after the zone recovered the spill was {falling[9]:F2}: it should fall gradually");
        Assert.True(falling.Zip(falling.Skip(1)).All(p => p.Second <= p.First), "the spill must fall monotonically");
        Assert.Equal(0.0, falling[^1]);
        Assert.Equal(1.0, service.LocalViewShare(1000));
    }

    [Fact]
    public void DeadBand_ARatioJustBelowTheOneThatSpilledDoesNotSendCallsBack_AndAJitteringRatioDoesNotFlap()
    {
        var service = new Service();
        service.Run(TimeSpan.FromSeconds(2), localMs: 1, remoteMs: 1);
        service.Run(TimeSpan.FromSeconds(6), localMs: 3, remoteMs: 1);
        Assert.Equal(0.2, service.Balance.Spill, 2);

        // Ratio 2.7: asks for 0.08 rising, but 2.7 / 0.8 = 3.4 asks for 0.35 falling: inside the band, nothing moves.
        var inBand = service.Run(TimeSpan.FromSeconds(5), localMs: 2.7, remoteMs: 1);
        Assert.All(inBand, s => Assert.Equal(0.2, s, 2));

        // Ratio 2.2: 2.2 / 0.8 = 2.75 asks for 0.1: the spill falls there.
        var below = service.Run(TimeSpan.FromSeconds(10), localMs: 2.2, remoteMs: 1);
        Assert.Equal(0.1, below[^1], 2);

        // From rest, a ratio jittering around the start (2.3, 2.7, 2.3, …) moves the spill little and never back and forth.
        var jitter = new Service();
        jitter.Run(TimeSpan.FromSeconds(2), localMs: 1, remoteMs: 1);
        var spills = new List<double>();
        for (var i = 0; i < 100; i++)
        {
            spills.AddRange(jitter.Run(Step, localMs: i % 2 == 0 ? 2.3 : 2.7, remoteMs: 1, remoteCalls: 50));
        }

        Assert.True(spills.Max() < 0.1, $"a ratio jittering around the start spilled {spills.Max():F2}");
        Assert.True(spills.Zip(spills.Skip(1)).All(p => p.Second >= p.First - 1e-12), "the spill went back and forth");
    }

    [Fact]
    public void ALoneSlowSampleAmongSparseOnes_MovesTheMeanLittle_TwoInARowAreFollowed()
    {
        // The other zone is measured by one probe per update (sparse): 5 ms each.
        var service = new Service();
        for (var i = 0; i < 40; i++)
        {
            service.Run(Step, localMs: 5, remoteMs: 5, remoteCalls: i % 2);
        }

        Assert.Equal(5.0, service.Balance.Read().RemoteSeconds!.Value * 1000, 2);

        // One probe of 70 ms counts as 10 ms (twice the mean): the mean moves by a few percent, not to 7 ms.
        service.Run(Step, localMs: 5, remoteMs: 70, remoteCalls: 1);
        var afterOne = service.Balance.Read().RemoteSeconds!.Value * 1000;
        Assert.InRange(afterOne, 5.0, 5.5);
        service.Run(Step, localMs: 5, remoteMs: 5, remoteCalls: 1);

        // Two in a row: the zone did slow down; the second one counts in full.
        service.Run(Step, localMs: 5, remoteMs: 70, remoteCalls: 1);
        service.Run(Step, localMs: 5, remoteMs: 70, remoteCalls: 1);
        Assert.True(service.Balance.Read().RemoteSeconds!.Value * 1000 > 7, $"after two slow probes in a row the mean was {service.Balance.Read().RemoteSeconds!.Value * 1000:F2} ms");
    }

    [Fact]
    public void OtherZonesUnmeasured_NothingSpills_AndProbesGoThereEveryUpdateUntilTheyAreMeasured()
    {
        var service = new Service();
        var probes = 0;
        for (var i = 0; i < 10; i++)
        {
            // The zone is slow, but nothing is known of the others: no ratio, no spill.
            service.Run(Step, localMs: 50, remoteMs: 0, remoteCalls: 0);
            probes += service.Balance.TakeProbe() ? 1 : 0;
        }

        Assert.Equal(0, service.Balance.Spill);
        Assert.Null(service.Balance.Read().Ratio);
        Assert.Equal(10, probes);

        // Measured (4 samples), the ratio is 50 and everything spills.
        service.Run(Step, localMs: 50, remoteMs: 1, remoteCalls: 2);
        Assert.NotNull(service.Balance.Read().Ratio);
        var spills = service.Run(TimeSpan.FromSeconds(3), localMs: 50, remoteMs: 1, remoteCalls: 2);
        Assert.Equal(1.0, spills[^1]);
    }

    [Fact]
    public void AtRest_TheOtherZonesGetAProbeAtMostOncePerSecondAndPer100Samples()
    {
        var service = new Service();
        service.Run(TimeSpan.FromSeconds(1), localMs: 1, remoteMs: 1);
        service.Balance.TakeProbe();

        // 100 samples a second (5 per endpoint per 100 ms) and no sample from the other zones but the probes' own.
        var probes = 0;
        for (var i = 0; i < 100; i++)
        {
            service.Run(Step, localMs: 1, remoteMs: 1, localCalls: 5, remoteCalls: 0);
            if (service.Balance.TakeProbe())
            {
                probes++;
                service.Remote.First().State.AddZoneSample(service.Frequency / 1000);
            }
        }

        Assert.InRange(probes, 9, 10); // 10 s: one a second
        Assert.Equal(0, service.Balance.Spill);

        // Quieter (20 samples a second): one per 100 samples, so 2 in 10 s (3 with what the first phase left over).
        probes = 0;
        for (var i = 0; i < 100; i++)
        {
            service.Run(Step, localMs: 1, remoteMs: 1, localCalls: 1, remoteCalls: 0);
            probes += service.Balance.TakeProbe() ? 1 : 0;
        }

        Assert.InRange(probes, 2, 3);
    }

    [Fact]
    public void ZoneWithoutAHealthyEndpoint_EveryCallGoesElsewhereAtOnce()
    {
        // Both local endpoints ejected: the snapshot's active endpoints are the other zone's.
        var service = new Service(active: all => all[2..]);
        Assert.Null(service.Zones.Local);
        Assert.Equal(0.0, service.LocalViewShare(100));
        Assert.Equal(1.0, service.Zones.MinSpill);
        var random = new SeededRandomizer(3);
        for (var i = 0; i < 100; i++)
        {
            var chosen = service.Zones.Choose(service.Snapshot, null, service.Time.GetTimestamp(), random);
            Assert.DoesNotContain(service.Policy.Pick(chosen, random, null)!, service.Local);
        }
    }

    [Fact]
    public void ZoneThatLostHalfItsEndpoints_KeepsHalfItsCalls_AndAReturningEndpointInSlowStartTakesItsCallsBackWithItsWeight()
    {
        // One local endpoint ejected: half the zone's weight is gone.
        var halved = new Service(active: all => [all[0], all[2], all[3]]);
        Assert.Equal(0.5, halved.Zones.MinSpill, 6);
        Assert.InRange(halved.LocalViewShare(10_000), 0.47, 0.53);

        // One local endpoint probing (back from its ejection): not the zone's, until its probe readmits it.
        var probing = new Service();
        probing.Entries[1].State.SetStatus(EndpointStatus.Probing);
        var rebuilt = new EndpointSnapshot("svc", probing.Entries, probing.Entries, probing.Policy, panic: false, roundRobinStart: 0, weights: null, probing.Context(probing.Balance));
        Assert.Equal(new[] { probing.Entries[0] }, rebuilt.Zones!.Local!.Active);
        Assert.Equal(0.5, rebuilt.Zones.MinSpill, 6);

        // Both readmitted, one 2 s into a 10 s slow start (20% of its weight): the zone holds 60% of its weight.
        var ramping = new Service(rampingFor: TimeSpan.FromSeconds(2));
        Assert.Equal(0.4, ramping.Zones.MinSpill, 6);
        Assert.InRange(ramping.LocalViewShare(10_000), 0.57, 0.63);
    }

    [Fact]
    public void ARetry_PicksAmongEveryZone()
    {
        var service = new Service();
        var retry = new MeshRequestContext("svc");
        retry.OnAttempt(service.Entries[0], "RoundRobin");
        Assert.Equal(0.0, service.LocalViewShare(100, retry));
        Assert.Equal(1.0, service.LocalViewShare(100));
    }

    [Fact]
    public void Panic_SetsZonesAside()
    {
        var service = new Service();
        var panic = new EndpointSnapshot("svc", service.Entries, service.Entries, service.Policy, panic: true, roundRobinStart: 0, weights: null, service.Context(service.Balance));
        Assert.Null(panic.Zones!.Local);
    }

    [Fact]
    public void AServiceWhoseEndpointsHaveNoZone_IsBalancedWithoutZones()
    {
        var entries = new[] { SnapshotFactory.Entry("http://10.0.0.1:80", 1), SnapshotFactory.Entry("http://10.0.0.2:80", 1) };
        var snapshot = new EndpointSnapshot("svc", entries, entries, RoundRobinPolicy.Instance, panic: false, roundRobinStart: 0, weights: null,
            new ZoneContext(new ZoneRoutingSettings(Zone, 2.5, 5), new ZoneBalance(Zone, TimeProvider.System.TimestampFrequency), default, 0, TimeProvider.System.TimestampFrequency));
        Assert.Null(snapshot.Zones);
        Assert.False(snapshot.SamplesZones);
    }

    [Theory]
    [InlineData(null, null, null, null, 2.5, 5.0)]
    [InlineData(3.0, null, null, null, 3.0, 5.0)]
    [InlineData(6.0, null, null, null, 6.0, 12.0)] // the full ratio follows a start set above it
    [InlineData(null, 8.0, 4.0, null, 4.0, 8.0)] // per service over global
    [InlineData(2.0, 3.0, null, 10.0, 2.0, 10.0)]
    public void Settings_ServiceOverGlobalOverDefault_AndAFullRatioBelowTheStartFollowsIt(double? start, double? full, double? serviceStart, double? serviceFull, double expectedStart, double expectedFull)
    {
        var options = new MeshOptions { Zone = Zone };
        options.ZoneRouting.SpillStartRatio = start;
        options.ZoneRouting.SpillFullRatio = full;
        var service = new MeshServiceOptions();
        service.ZoneRouting.SpillStartRatio = serviceStart;
        service.ZoneRouting.SpillFullRatio = serviceFull;

        var settings = ZoneRoutingSettings.Resolve(options, service)!;
        Assert.Equal((expectedStart, expectedFull), (settings.SpillStartRatio, settings.SpillFullRatio));
    }

    [Fact]
    public void Settings_OnByDefaultWithAZone_OffWithoutOne_AndEitherLevelTurnsThemOff()
    {
        Assert.Null(ZoneRoutingSettings.Resolve(new MeshOptions(), null));
        Assert.NotNull(ZoneRoutingSettings.Resolve(new MeshOptions { Zone = Zone }, null));

        var off = new MeshOptions { Zone = Zone };
        off.ZoneRouting.Enabled = false;
        Assert.Null(ZoneRoutingSettings.Resolve(off, null));
        var service = new MeshServiceOptions();
        service.ZoneRouting.Enabled = true;
        Assert.NotNull(ZoneRoutingSettings.Resolve(off, service));
        service.ZoneRouting.Enabled = false;
        Assert.Null(ZoneRoutingSettings.Resolve(new MeshOptions { Zone = Zone }, service));
    }

    [Fact]
    public void Zone_ComesFromMeshZoneEnvironmentVariable_OnlyWhenConfigurationLeavesItUnset()
    {
        var environment = new Dictionary<string, string?> { ["MESH_ZONE"] = "eu-west-1b" };
        var fromEnvironment = new MeshOptions();
        fromEnvironment.ApplyZoneFromEnvironment(environment.GetValueOrDefault);
        Assert.Equal(("eu-west-1b", true), (fromEnvironment.Zone, fromEnvironment.ZoneFromEnvironment));

        var configured = new MeshOptions { Zone = "eu-west-1a" };
        configured.ApplyZoneFromEnvironment(environment.GetValueOrDefault);
        Assert.Equal(("eu-west-1a", false), (configured.Zone, configured.ZoneFromEnvironment));

        var blank = new MeshOptions();
        blank.ApplyZoneFromEnvironment(_ => "  ");
        Assert.Null(blank.Zone);
    }
}
