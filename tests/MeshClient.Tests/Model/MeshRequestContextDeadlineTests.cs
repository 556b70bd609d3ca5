using MeshClient.Model;
using MeshClient.Tests.Infrastructure;

namespace MeshClient.Tests.Model;

/// <summary>
/// Issue 18, part 2: a call's deadline is the shorter of its own (gRPC's <c>grpc-timeout</c>, with its grace) and the one
/// it inherits from the work in progress (exact): the arithmetic, on a fake clock.
/// </summary>
public sealed class MeshRequestContextDeadlineTests
{
    [Fact]
    public void WithoutADeadline_NothingIsBounded()
    {
        var time = FakeTime.Create();
        var context = new MeshRequestContext("catalog");
        Assert.Null(context.Deadline);
        Assert.Null(context.Remaining(time));
        Assert.False(context.DeadlinePassed(time));
        Assert.Null(context.DeadlineHeader);
    }

    [Fact]
    public void AnInheritedDeadline_BoundsTheCall_Exactly()
    {
        var time = FakeTime.Create();
        using var scope = MeshDeadline.Begin(TimeSpan.FromSeconds(2), time);
        time.Advance(TimeSpan.FromMilliseconds(700)); // spent before the call
        var context = new MeshRequestContext("catalog");
        context.Inherit(MeshDeadline.Current!, MeshDeadline.Current!.Remaining, time.GetTimestamp(), MeshDeadline.HeaderName);

        Assert.Equal(TimeSpan.FromMilliseconds(1300), context.Deadline);
        Assert.Equal(TimeSpan.FromMilliseconds(1300), context.Remaining(time));
        time.Advance(TimeSpan.FromMilliseconds(1299));
        Assert.Equal(TimeSpan.FromMilliseconds(1), context.Remaining(time));
        Assert.False(context.DeadlinePassed(time));
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(context.DeadlinePassed(time)); // no grace: nobody else's timer races the mesh's
        Assert.Equal(MeshDeadline.HeaderName, context.DeadlineHeader);
    }

    [Fact]
    public void AnOwnDeadline_KeepsItsGrace()
    {
        var time = FakeTime.Create();
        var context = new MeshRequestContext("catalog");
        context.SetDeadline(TimeSpan.FromSeconds(1), time.GetTimestamp()); // grace: a tenth, 100 ms

        Assert.Equal(TimeSpan.FromSeconds(1), context.Deadline);
        Assert.Equal(TimeSpan.FromMilliseconds(1100), context.Remaining(time));
        time.Advance(TimeSpan.FromMilliseconds(899));
        Assert.False(context.DeadlinePassed(time));
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(context.DeadlinePassed(time));
    }

    [Fact]
    public void AShorterInheritedDeadline_WinsOverTheCallsOwn()
    {
        var time = FakeTime.Create();
        var start = time.GetTimestamp();
        using var scope = MeshDeadline.Begin(TimeSpan.FromMilliseconds(500), time);
        var context = new MeshRequestContext("catalog");
        context.SetDeadline(TimeSpan.FromSeconds(5), start);
        context.Inherit(MeshDeadline.Current!, TimeSpan.FromMilliseconds(500), start, "grpc-timeout");

        Assert.Equal(TimeSpan.FromMilliseconds(500), context.Deadline);
        Assert.Equal(TimeSpan.FromMilliseconds(500), context.Remaining(time)); // not 5 s + 250 ms of grace
        time.Advance(TimeSpan.FromMilliseconds(500));
        Assert.True(context.DeadlinePassed(time));
    }

    [Fact]
    public void AShorterOwnDeadline_WinsOverTheInheritedOne_WithItsGrace()
    {
        var time = FakeTime.Create();
        var start = time.GetTimestamp();
        using var scope = MeshDeadline.Begin(TimeSpan.FromSeconds(10), time);
        var context = new MeshRequestContext("catalog");
        context.SetDeadline(TimeSpan.FromMilliseconds(200), start); // grace 20 ms
        context.Inherit(MeshDeadline.Current!, TimeSpan.FromSeconds(10), start, null);

        Assert.Equal(TimeSpan.FromMilliseconds(200), context.Deadline);
        Assert.Equal(TimeSpan.FromMilliseconds(220), context.Remaining(time));
        time.Advance(TimeSpan.FromMilliseconds(180));
        Assert.True(context.DeadlinePassed(time));
    }

    [Fact]
    public void AnInheritedDeadlineBetweenTheOwnOneAndItsGrace_BoundsTheCall_AndTheOwnOnePassesFirst()
    {
        var time = FakeTime.Create();
        var start = time.GetTimestamp();
        using var scope = MeshDeadline.Begin(TimeSpan.FromMilliseconds(1050), time);
        var context = new MeshRequestContext("catalog");
        context.SetDeadline(TimeSpan.FromSeconds(1), start); // passes at 900 ms, bounds at 1,100 ms
        context.Inherit(MeshDeadline.Current!, TimeSpan.FromMilliseconds(1050), start, null);

        Assert.Equal(TimeSpan.FromSeconds(1), context.Deadline);
        Assert.Equal(TimeSpan.FromMilliseconds(1050), context.Remaining(time));
        time.Advance(TimeSpan.FromMilliseconds(900));
        Assert.True(context.DeadlinePassed(time));
    }
}
