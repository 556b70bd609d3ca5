namespace MeshClient.Model;

/// <summary>
/// What outlier detection keeps per endpoint (<see cref="EndpointState.Health"/>): its failure window, how many times
/// in a row it was ejected, when it was last readmitted, and the timer of its current ejection.
/// </summary>
/// <param name="window">The rolling count of attempts and failures over the failure-percentage window.</param>
internal sealed class EndpointHealth(RollingCounter window)
{
    public RollingCounter Window { get; } = window;

    public int TimesEjected { get; set; }

    public long LastReadmitted { get; set; }

    public ITimer? Timer { get; set; }
}
