using MeshClient.Model;

namespace MeshClient.Balancing;

/// <summary>
/// The zones of one snapshot, computed with it (off the hot path): which endpoints are in the caller's zone, the view
/// of the healthy ones (<see cref="Local"/>), the view of the other zones' (<see cref="Remote"/>, for probes), and the
/// least spill the zone's lost capacity calls for (<see cref="MinSpill"/>). <see cref="Choose"/> is the zone half of the
/// pick: one view of three, lock-free and allocation-free.
/// </summary>
internal sealed class ZoneView
{
    private ZoneView(string zone, ZoneRoutingSettings settings, ZoneBalance balance, EndpointEntry[] all, bool[] isLocal)
    {
        Zone = zone;
        Settings = settings;
        Balance = balance;
        All = all;
        IsLocal = isLocal;
    }

    /// <summary>Gets the caller's zone.</summary>
    public string Zone { get; }

    public ZoneRoutingSettings Settings { get; }

    /// <summary>Gets the service's live zone state (shared by its snapshots).</summary>
    public ZoneBalance Balance { get; }

    /// <summary>Gets every endpoint of the snapshot (<see cref="EndpointSnapshot.All"/>).</summary>
    public EndpointEntry[] All { get; }

    /// <summary>Gets, for each of <see cref="All"/>, whether it is in the caller's zone (<see cref="EndpointEntry.IsLocalTo"/>).</summary>
    public bool[] IsLocal { get; }

    /// <summary>
    /// Gets the view of the zone's healthy endpoints when calls can be split between it and the others, or
    /// <see langword="null"/>: no healthy endpoint in the zone (every call goes elsewhere at once), no endpoint outside
    /// it, or the service in panic (then, as in Envoy, zones are set aside).
    /// </summary>
    public EndpointSnapshot? Local { get; private init; }

    /// <summary>Gets the view of the other zones' endpoints that take traffic (for probes), or <see langword="null"/> when there are none.</summary>
    public EndpointSnapshot? Remote { get; private init; }

    /// <summary>
    /// Gets the least share of calls that leave the zone: the share of the zone's weight that is not healthy now (ejected,
    /// probing) or not yet ramped up (slow start). A zone that lost half its endpoints keeps half its calls, and a
    /// returning zone takes its calls back as its endpoints are readmitted and ramp up.
    /// </summary>
    public double MinSpill { get; private init; }

    /// <summary>Gets the number of endpoints in the caller's zone (all of them, healthy or not).</summary>
    public int LocalCount { get; private init; }

    /// <summary>
    /// The zones of <paramref name="snapshot"/>, or <see langword="null"/> when none of its endpoints says where it is
    /// (no zone, no hint): such a service is balanced as without zone routing.
    /// </summary>
    /// <param name="snapshot">The snapshot being built (its <see cref="EndpointSnapshot.Active"/> and weights are set).</param>
    /// <param name="context">The service's zone routing and its balance.</param>
    public static ZoneView? Create(EndpointSnapshot snapshot, ZoneContext context)
    {
        var all = snapshot.All;
        var zone = context.Settings.Zone;
        var isLocal = new bool[all.Length];
        var any = false;
        var localCount = 0;
        long localWeight = 0;
        for (var i = 0; i < all.Length; i++)
        {
            any |= all[i].HasZone;
            if (all[i].IsLocalTo(zone))
            {
                isLocal[i] = true;
                localCount++;
                localWeight += all[i].Weight;
            }
        }

        if (!any)
        {
            return null;
        }

        var active = snapshot.Active;
        var local = new List<int>();
        var remote = new List<int>();
        for (var i = 0; i < active.Length; i++)
        {
            if (!active[i].IsLocalTo(zone))
            {
                remote.Add(i);
            }
            else if (active[i].State.Status == EndpointStatus.Healthy)
            {
                local.Add(i); // a probing endpoint takes its probe among all endpoints, not as the zone's only one
            }
        }

        var split = !snapshot.Panic && local.Count > 0 && local.Count < active.Length;

        // The zone's capacity now: the discovered weight of its healthy endpoints, each ramped by slow start (computed
        // from the ramp, not from the snapshot's weights, which a policy may have replaced: reported load, for one).
        double healthyWeight = 0;
        foreach (var i in local)
        {
            var since = active[i].State.SlowStartSince;
            var ramp = since == 0 ? 1.0 : context.Ramp.Factor(TimeSpan.FromSeconds((context.Now - since) / (double)context.Frequency));
            healthyWeight += active[i].Weight * ramp;
        }

        return new ZoneView(zone, context.Settings, context.Balance, all, isLocal)
        {
            Local = split ? snapshot.CreateView(local) : null,
            Remote = split && remote.Count > 0 ? snapshot.CreateView(remote) : null,
            MinSpill = localWeight == 0 ? 1 : Math.Clamp(1 - (healthyWeight / localWeight), 0, 1),
            LocalCount = localCount,
        };
    }

    /// <summary>
    /// The view an attempt picks from: the zone's (<see cref="Local"/>), the other zones' for a due probe
    /// (<see cref="Remote"/>), or the whole <paramref name="snapshot"/> — for a spilled call, a retry (any endpoint the
    /// call has not tried, in any zone), and when calls cannot be split. Updates the balance when its interval has
    /// passed.
    /// </summary>
    public EndpointSnapshot Choose(EndpointSnapshot snapshot, MeshRequestContext? context, long now, Randomizer random)
    {
        var balance = Balance;
        balance.MaybeUpdate(now, this);
        if (Local is not { } local || context is { IsRetry: true })
        {
            return snapshot;
        }

        if (Remote is { } remote && balance.TakeProbe())
        {
            return remote;
        }

        var spill = Math.Max(balance.Spill, MinSpill);
        return spill <= 0 ? local
            : spill >= 1 || random.NextDouble() < spill ? snapshot
            : local;
    }

    /// <summary>Whether <paramref name="endpoint"/> is in the caller's zone.</summary>
    public bool IsLocalEndpoint(EndpointEntry endpoint) => endpoint.IsLocalTo(Zone);
}

/// <summary>What a snapshot needs to compute its zones.</summary>
/// <param name="Settings">The service's zone routing.</param>
/// <param name="Balance">The service's live zone state.</param>
/// <param name="Ramp">The service's slow start (how much of its weight a readmitted endpoint has).</param>
/// <param name="Now">The timestamp the snapshot is built at.</param>
/// <param name="Frequency">The frequency of the timestamps.</param>
internal sealed record ZoneContext(ZoneRoutingSettings Settings, ZoneBalance Balance, SlowStartRamp Ramp, long Now, long Frequency);
