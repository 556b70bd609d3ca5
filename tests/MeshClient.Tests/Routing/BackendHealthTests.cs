using MeshClient.Balancing;
using MeshClient.Routing;

namespace MeshClient.Tests.Routing;

/// <summary>The verdict on a route backend from its table's resolution and snapshot.</summary>
public sealed class BackendHealthTests
{
    /// <summary>
    /// Regression (CI, RouteHealthTests): a table's first answer is marked known a moment before its first snapshot is
    /// published. A read in that moment said "no discovery provider knows it" and logged a backend about to serve as
    /// dropped out of the split (event 120), then back (121).
    /// </summary>
    [Fact]
    public void KnownWithoutASnapshotYet_IsPending_NotDown()
    {
        var (availability, reason) = BackendHealth.Classify(ServiceResolution.Known, null);
        Assert.Equal(BackendAvailability.Pending, availability);
        Assert.Null(reason);
    }

    [Theory]
    [InlineData(nameof(ServiceResolution.Pending), nameof(BackendAvailability.Pending), null)]
    [InlineData(nameof(ServiceResolution.Unknown), nameof(BackendAvailability.Down), "no discovery provider knows it")]
    [InlineData(nameof(ServiceResolution.Failed), nameof(BackendAvailability.Down), "its discovery failed")]
    public void WithoutASnapshot_TheResolutionDecides(string resolution, string expected, string? reason)
    {
        var (availability, why) = BackendHealth.Classify(Enum.Parse<ServiceResolution>(resolution), null);
        Assert.Equal(Enum.Parse<BackendAvailability>(expected), availability);
        Assert.Equal(reason, why);
    }
}
