using MeshClient.Model;
using MeshClient.Resilience;
using MeshClient.Tests.Infrastructure;

namespace MeshClient.Tests.Resilience;

/// <summary>
/// Issue 19: a call's total and attempt timeouts share one cancellation source, armed for whichever ends first; on a
/// fake clock, which of them fired decides whether the call may go on, and the caller's cancellation is neither.
/// </summary>
public sealed class CallTimeoutTests
{
    private static readonly ResilienceSettings Settings = ResilienceSettings.Defaults with
    {
        AttemptTimeout = TimeSpan.FromSeconds(2),
        TotalTimeout = TimeSpan.FromSeconds(5),
    };

    [Fact]
    public void TheAttemptTimeout_EndsTheAttempt_AndTheCallGoesOnWithAFreshToken()
    {
        var time = FakeTime.Create();
        var timeout = CallTimeout.Start(time, Settings, new MeshRequestContext("svc"), CancellationToken.None);
        timeout.StartAttempt();
        var attemptToken = timeout.Token;

        time.Advance(TimeSpan.FromSeconds(2));
        Assert.True(attemptToken.IsCancellationRequested);
        Assert.True(timeout.AttemptTimedOut);
        Assert.False(timeout.CallEnded);
        Assert.Equal(TimeSpan.FromSeconds(2), timeout.AttemptTimeoutException(new OperationCanceledException()).Timeout);

        timeout.ContinueCall();
        Assert.False(timeout.Token.IsCancellationRequested);
        Assert.False(timeout.AttemptTimedOut);

        time.Advance(TimeSpan.FromSeconds(2.9)); // 4.9 s of the call's 5
        timeout.StartAttempt(); // 0.1 s left: the end of the call comes first
        Assert.False(timeout.Token.IsCancellationRequested);
        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.True(timeout.Token.IsCancellationRequested);
        Assert.False(timeout.AttemptTimedOut);
        Assert.True(timeout.CallTimedOut);
        Assert.True(timeout.CallEnded);
        Assert.Equal(TimeSpan.FromSeconds(5), timeout.CallTimeoutException(new OperationCanceledException()).Timeout);
        timeout.Return();
    }

    [Fact]
    public void AnAttemptThatEndsInTime_LeavesTheCallArmedForItsTotal()
    {
        var time = FakeTime.Create();
        var timeout = CallTimeout.Start(time, Settings, new MeshRequestContext("svc"), CancellationToken.None);
        timeout.StartAttempt();
        time.Advance(TimeSpan.FromSeconds(1)); // the attempt answered after 1 s; a retry follows
        timeout.ContinueCall();
        time.Advance(TimeSpan.FromSeconds(3.9));
        Assert.False(timeout.Token.IsCancellationRequested); // not the attempt's 2 s: the call's 5 s
        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.True(timeout.CallTimedOut);
        timeout.Return();
    }

    [Fact]
    public void TheCallersCancellation_IsNeitherTimeout()
    {
        var time = FakeTime.Create();
        using var caller = new CancellationTokenSource();
        var timeout = CallTimeout.Start(time, Settings, new MeshRequestContext("svc"), caller.Token);
        timeout.StartAttempt();
        caller.Cancel();
        Assert.True(timeout.Token.IsCancellationRequested);
        Assert.False(timeout.AttemptTimedOut);
        Assert.False(timeout.CallTimedOut);
        Assert.True(timeout.CallEnded);
        timeout.Return();
    }

    [Fact]
    public void ADeadline_BoundsBothTimeouts_AndItsExpiryEndsTheCall()
    {
        var time = FakeTime.Create();
        var call = new MeshRequestContext("svc");
        call.SetDeadline(TimeSpan.FromMilliseconds(500), time.GetTimestamp()); // + a grace of 50 ms
        var timeout = CallTimeout.Start(time, Settings, call, CancellationToken.None);
        timeout.StartAttempt();
        time.Advance(TimeSpan.FromMilliseconds(549));
        Assert.False(timeout.Token.IsCancellationRequested);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(timeout.CallTimedOut); // the deadline is the call's: no attempt may follow
        Assert.False(timeout.AttemptTimedOut);
        timeout.Return();
    }

    [Fact]
    public void AHedgedAttempt_HasItsOwnAttemptTimeout_AndEndsWithItsRaceOrItsCall()
    {
        // Hedging runs attempts of one call at once: one attempt's timeout must end that attempt, not the call or the
        // other attempts; the end of the call, or the attempt losing its race, ends it too (through its token).
        var time = FakeTime.Create();
        var timeout = CallTimeout.Start(time, Settings, new MeshRequestContext("svc"), CancellationToken.None);
        using var firstRace = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        using var hedgeRace = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var first = timeout.ForAttempt(firstRace.Token);
        first.StartAttempt();
        time.Advance(TimeSpan.FromSeconds(1));
        var hedge = timeout.ForAttempt(hedgeRace.Token);
        hedge.StartAttempt();

        time.Advance(TimeSpan.FromSeconds(1)); // the first attempt's 2 s
        Assert.True(first.AttemptTimedOut);
        Assert.False(hedge.Token.IsCancellationRequested);
        Assert.False(timeout.Token.IsCancellationRequested);
        first.Return();

        hedgeRace.Cancel(); // it lost its race
        Assert.True(hedge.Token.IsCancellationRequested);
        Assert.False(hedge.AttemptTimedOut);
        hedge.Return();

        using var lastRace = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var last = timeout.ForAttempt(lastRace.Token);
        time.Advance(TimeSpan.FromSeconds(2.5)); // 4.5 s of the call's 5: the end of the call comes first
        last.StartAttempt();
        time.Advance(TimeSpan.FromSeconds(0.5));
        Assert.True(timeout.CallTimedOut);
        Assert.True(last.Token.IsCancellationRequested);
        Assert.False(last.AttemptTimedOut); // the call's end, not the attempt's timeout
        last.Return();
        timeout.Return();
    }

    [Fact]
    public void PooledTimeouts_NeverCarryACancellationIntoTheNextCall()
    {
        // The system clock pools the objects and their sources: a call that ended by its attempt timeout, by its
        // caller's cancellation or in time hands the next call an uncancelled token.
        var call = new MeshRequestContext("svc");
        var quick = ResilienceSettings.Defaults with { AttemptTimeout = TimeSpan.FromMilliseconds(10), TotalTimeout = TimeSpan.FromSeconds(30) };
        for (var i = 0; i < 50; i++)
        {
            using var caller = new CancellationTokenSource();
            var timeout = CallTimeout.Start(TimeProvider.System, quick, call, caller.Token);
            Assert.False(timeout.Token.IsCancellationRequested);
            switch (i % 3)
            {
                case 0:
                    timeout.StartAttempt();
                    Assert.True(timeout.Token.WaitHandle.WaitOne(TimeSpan.FromSeconds(5)));
                    Assert.True(timeout.AttemptTimedOut);
                    break;
                case 1:
                    caller.Cancel();
                    Assert.True(timeout.Token.IsCancellationRequested);
                    break;
            }

            timeout.Return();
            caller.Cancel(); // after its call ended, the caller's token no longer reaches the pooled source
        }

        var next = CallTimeout.Start(TimeProvider.System, quick, call, CancellationToken.None);
        Assert.False(next.Token.IsCancellationRequested);
        next.Return();
    }
}
