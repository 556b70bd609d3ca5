namespace MeshClient.Model;

/// <summary>
/// The last usable load an endpoint reported of itself (<see cref="OrcaLoadReport"/>): its utilization
/// (<c>application_utilization</c> when set, else <c>cpu_utilization</c>), its rate (<c>rps_fractional</c>) and its
/// error rate (<c>eps</c>), with the time it arrived, and since when it has been reporting without a gap
/// (<see cref="NonEmptySince"/>, gRFC A58's <c>non_empty_since</c>). A report without both a utilization and a rate
/// says nothing a weight can use and is not kept (A58). Written by the responses of the endpoint, read off the hot path
/// (the weights of <c>WeightedRoundRobin</c>): a sequence lock keeps a reader from mixing two reports, with no lock
/// and no allocation; a report that arrives while another is being written is dropped (the next one follows).
/// </summary>
internal sealed class EndpointLoadReport
{
    /// <summary>The value of <see cref="NonEmptySince"/> while the endpoint has no report counted since its last restart.</summary>
    public const long None = long.MinValue;

    private int _version; // odd while a report is being written
    private double _utilization;
    private double _qps;
    private double _eps;
    private long _receivedAt;
    private long _nonEmptySince = None;

    /// <summary>
    /// Gets the timestamp of the first usable report since the endpoint started reporting (or since
    /// <see cref="RestartBlackout"/>), or <see cref="None"/>.
    /// </summary>
    public long NonEmptySince => Volatile.Read(ref _nonEmptySince);

    /// <summary>Keeps a report that arrived at <paramref name="now"/> (a <see cref="TimeProvider"/> timestamp).</summary>
    /// <param name="report">The report.</param>
    /// <param name="now">When it arrived.</param>
    /// <returns>Whether it was kept (it had a utilization and a rate, and no other report was being written).</returns>
    public bool Record(in OrcaLoadReport report, long now)
    {
        var utilization = report.Utilization;
        var qps = report.RpsFractional;
        if (!(utilization > 0 && qps > 0))
        {
            return false;
        }

        var version = Volatile.Read(ref _version);
        if ((version & 1) != 0 || Interlocked.CompareExchange(ref _version, version + 1, version) != version)
        {
            return false; // another response of the endpoint is writing its report: this one is as old
        }

        Volatile.Write(ref _utilization, utilization);
        Volatile.Write(ref _qps, qps);
        Volatile.Write(ref _eps, report.Eps);
        Volatile.Write(ref _receivedAt, now);
        Volatile.Write(ref _version, version + 2);
        if (Volatile.Read(ref _nonEmptySince) == None)
        {
            Interlocked.CompareExchange(ref _nonEmptySince, now, None);
        }

        return true;
    }

    /// <summary>Reads the last usable report; <see langword="false"/> before the first one.</summary>
    /// <param name="utilization">The utilization it reported.</param>
    /// <param name="qps">The requests per second it reported.</param>
    /// <param name="eps">The errors per second it reported.</param>
    /// <param name="receivedAt">When it arrived.</param>
    public bool TryRead(out double utilization, out double qps, out double eps, out long receivedAt)
    {
        while (true)
        {
            var before = Volatile.Read(ref _version);
            utilization = Volatile.Read(ref _utilization);
            qps = Volatile.Read(ref _qps);
            eps = Volatile.Read(ref _eps);
            receivedAt = Volatile.Read(ref _receivedAt);
            if ((before & 1) == 0 && Volatile.Read(ref _version) == before)
            {
                return before != 0;
            }

            Thread.SpinWait(1); // a writer is between two stores: a few instructions
        }
    }

    /// <summary>
    /// Restarts the blackout: the next usable report starts a new <see cref="NonEmptySince"/> (A58: when the weight
    /// expired, or the endpoint came back). Does nothing if a report moved it since <paramref name="observed"/> was read.
    /// </summary>
    /// <param name="observed">The <see cref="NonEmptySince"/> the caller read.</param>
    public void RestartBlackout(long observed) => Interlocked.CompareExchange(ref _nonEmptySince, None, observed);
}
