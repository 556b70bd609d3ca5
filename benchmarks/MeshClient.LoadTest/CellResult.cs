namespace MeshClient.LoadTest;

/// <summary>The measured outcome of one contender in one scenario and shape.</summary>
public sealed record CellResult
{
    public required int Run { get; init; }

    public required string Scenario { get; init; }

    public required string Shape { get; init; }

    public required string Contender { get; init; }

    /// <summary>Gets the number of requests counted (sent, or due but unsent).</summary>
    public required long Count { get; init; }

    public required long Succeeded { get; init; }

    public double SuccessPercent => Count == 0 ? 0 : 100.0 * Succeeded / Count;

    public required double P50 { get; init; }

    public required double P90 { get; init; }

    public required double P99 { get; init; }

    public required double P999 { get; init; }

    public required double Max { get; init; }

    /// <summary>Gets completions inside the measured window ÷ window.</summary>
    public required double RequestsPerSecond { get; init; }

    public double OkRequestsPerSecond => Count == 0 ? 0 : RequestsPerSecond * Succeeded / Count;

    public required double ClientCpuMsPer1k { get; init; }

    public required double? ProxyCpuMsPer1k { get; init; }

    public required double BackendsCpuMsPer1k { get; init; }

    public double ClientPlusProxyCpuMsPer1k => ClientCpuMsPer1k + (ProxyCpuMsPer1k ?? 0);

    public required double AllocatedBytesPerRequest { get; init; }

    public required int Gen0 { get; init; }

    public required int Gen1 { get; init; }

    public required int Gen2 { get; init; }

    /// <summary>Gets the open model's sender lateness (actual − intended send time), p50 and p99, µs.</summary>
    public required (double P50, double P99)? SenderLag { get; init; }

    /// <summary>Gets the requests the backends received per caller-visible request (retries make it > 1).</summary>
    public required double BackendHitsPerRequest { get; init; }

    /// <summary>Gets the share of backend hits that went to the faulty backend (slow, failing), if there is one.</summary>
    public required double? FaultyHitShare { get; init; }

    /// <summary>Gets the hits of the first backends, in endpoint order (#1, #2, ...).</summary>
    public required IReadOnlyList<long> Hits { get; init; }

    public required IReadOnlyList<KeyValuePair<string, long>> Errors { get; init; }

    public required int ChurnEvents { get; init; }

    public required TimeSpan Elapsed { get; init; }

    /// <summary>Gets the CPU that processes outside this run used during the measured phase, in % of the machine.</summary>
    public double OtherCpuPercent { get; init; }

    /// <summary>Gets the CPU time the hypervisor stole during the measured phase, in % of the machine.</summary>
    public double StealPercent { get; init; }
}
