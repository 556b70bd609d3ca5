using CsCheck;
using MeshClient.Tests.Infrastructure;

namespace MeshClient.Tests;

/// <summary>
/// Issue 18, part 2: the ambient deadline (<see cref="MeshDeadline"/>) and the timeout format it shares with gRPC's
/// <c>grpc-timeout</c>. Every timing rule on a <see cref="Microsoft.Extensions.Time.Testing.FakeTimeProvider"/>.
/// </summary>
public sealed class MeshDeadlineTests
{
    [Theory]
    [InlineData("1H", 36_000_000_000L)]
    [InlineData("2M", 1_200_000_000L)]
    [InlineData("3S", 30_000_000L)]
    [InlineData("250m", 2_500_000L)]
    [InlineData("5u", 50L)]
    [InlineData("600n", 6L)]
    [InlineData("99n", 0L)] // below a tick: truncated
    [InlineData("0m", 0L)] // zero: a deadline already passed
    [InlineData("00000001S", 10_000_000L)] // 8 digits, leading zeros
    [InlineData("99999999m", 999_999_990_000L)]
    [InlineData("99999999H", 99_999_999L * 36_000_000_000L)] // the largest: 11,400 years, no overflow
    public void TryParseTimeout_AWellFormedValue_GivesItsTimeout(string value, long ticks)
    {
        Assert.True(MeshDeadline.TryParseTimeout(value, out var timeout));
        Assert.Equal(TimeSpan.FromTicks(ticks), timeout);
    }

    [Theory]
    [InlineData("")]
    [InlineData("m")] // no digits
    [InlineData("5")] // no unit
    [InlineData("123456789m")] // 9 digits
    [InlineData("999999999H")] // 9 digits, would overflow nothing but is not gRPC
    [InlineData("5s")] // units are case-sensitive: s is not one
    [InlineData("5h")]
    [InlineData("5x")]
    [InlineData("5ms")]
    [InlineData("+5m")]
    [InlineData("-5m")]
    [InlineData(" 5m")]
    [InlineData("5 m")]
    [InlineData("1.5S")]
    [InlineData("1,5S")]
    [InlineData("\u0665m")] // ARABIC-INDIC DIGIT FIVE: a digit to long.TryParse in some cultures, not to gRPC
    [InlineData("5mm")]
    public void TryParseTimeout_AMalformedValue_IsRefused(string value)
    {
        Assert.False(MeshDeadline.TryParseTimeout(value, out var timeout));
        Assert.Equal(TimeSpan.Zero, timeout);
    }

    [Theory]
    [InlineData(0L, "1n")] // nothing left: the smallest positive value (Grpc.AspNetCore reads 0 as no deadline)
    [InlineData(-10_000L, "1n")]
    [InlineData(1L, "100n")]
    [InlineData(5_000L, "500000n")] // 500 µs
    [InlineData(9_999L, "999900n")]
    [InlineData(10_000L, "1m")]
    [InlineData(19_999L, "1m")] // rounded down: never more time than is left
    [InlineData(15_000_000L, "1500m")]
    [InlineData(999_999_990_000L, "99999999m")]
    [InlineData(1_000_000_000_000L, "100000S")] // 100,000,000 ms does not fit in 8 digits
    [InlineData(99_999_999L * 10_000_000L + 9_999_999L, "99999999S")]
    [InlineData(100_000_000L * 10_000_000L, "1666666M")]
    public void FormatTimeout_PicksTheFinestUnitThatFits_RoundingDown(long ticks, string expected)
    {
        Assert.Equal(expected, MeshDeadline.FormatTimeout(TimeSpan.FromTicks(ticks)));
    }

    [Fact]
    public void FormatTimeout_BeyondTheFormat_IsCappedAt99999999H()
    {
        Assert.Equal("99999999H", MeshDeadline.FormatTimeout(TimeSpan.MaxValue));
        Assert.Equal("99999999H", MeshDeadline.FormatTimeout(TimeSpan.FromHours(100_000_000)));
    }

    [Fact]
    public void FormatThenParse_NeverGivesMoreTime_AndLosesLessThanItsUnit()
    {
        Gen.Long[1, TimeSpan.FromDays(3000).Ticks].Sample(ticks =>
        {
            var timeout = TimeSpan.FromTicks(ticks);
            var text = MeshDeadline.FormatTimeout(timeout);
            Assert.True(MeshDeadline.TryParseTimeout(text, out var back), text);
            Assert.InRange(text.Length, 2, 9);
            Assert.True(back <= timeout, $"{timeout} became {text}");
            var unit = text[^1] switch { 'n' => TimeSpan.FromTicks(1), 'm' => TimeSpan.FromMilliseconds(1), 'S' => TimeSpan.FromSeconds(1), 'M' => TimeSpan.FromMinutes(1), _ => TimeSpan.FromHours(1) };
            Assert.True(timeout - back < unit, $"{timeout} became {text}");
        }, iter: 20_000);
    }

    [Fact]
    public void Current_IsNull_WithoutAScope()
    {
        Assert.Null(MeshDeadline.Current);
    }

    [Fact]
    public void Begin_MakesADeadlineCurrent_WhoseRemainingTimeFollowsItsClock_UntilDisposed()
    {
        var time = FakeTime.Create();
        using (MeshDeadline.Begin(TimeSpan.FromSeconds(2), time))
        {
            var deadline = Assert.IsType<MeshDeadline>(MeshDeadline.Current);
            Assert.Equal(TimeSpan.FromSeconds(2), deadline.Remaining);
            time.Advance(TimeSpan.FromMilliseconds(1500));
            Assert.Equal(TimeSpan.FromMilliseconds(500), deadline.Remaining);
            Assert.False(deadline.HasPassed);
            time.Advance(TimeSpan.FromMilliseconds(500));
            Assert.Equal(TimeSpan.Zero, deadline.Remaining);
            Assert.True(deadline.HasPassed);
            time.Advance(TimeSpan.FromSeconds(1));
            Assert.Equal(TimeSpan.Zero, deadline.Remaining); // never negative
        }

        Assert.Null(MeshDeadline.Current);
    }

    [Fact]
    public void Begin_ZeroIsADeadlineAlreadyPassed_AndANegativeTimeoutIsRefused()
    {
        var time = FakeTime.Create();
        using (MeshDeadline.Begin(TimeSpan.Zero, time))
        {
            Assert.True(MeshDeadline.Current!.HasPassed);
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => MeshDeadline.Begin(TimeSpan.FromTicks(-1), time));
        Assert.Null(MeshDeadline.Current);
    }

    [Fact]
    public void ANestedScope_MayShortenTheDeadline_NeverLengthenIt()
    {
        var time = FakeTime.Create();
        using (MeshDeadline.Begin(TimeSpan.FromSeconds(2), time))
        {
            var outer = MeshDeadline.Current;
            using (MeshDeadline.Begin(TimeSpan.FromSeconds(5), time))
            {
                Assert.Same(outer, MeshDeadline.Current);
            }

            using (MeshDeadline.Begin(TimeSpan.FromSeconds(1), time))
            {
                Assert.NotSame(outer, MeshDeadline.Current);
                Assert.Equal(TimeSpan.FromSeconds(1), MeshDeadline.Current!.Remaining);
            }

            Assert.Same(outer, MeshDeadline.Current);
        }

        Assert.Null(MeshDeadline.Current);
    }

    [Fact]
    public void DisposingAScopeTwice_RestoresOnlyOnce()
    {
        var time = FakeTime.Create();
        using var outer = MeshDeadline.Begin(TimeSpan.FromSeconds(5), time);
        var first = MeshDeadline.Current;
        var inner = MeshDeadline.Begin(TimeSpan.FromSeconds(1), time);
        inner.Dispose();
        Assert.Same(first, MeshDeadline.Current);
        using (MeshDeadline.Begin(TimeSpan.FromMilliseconds(100), time))
        {
            var innermost = MeshDeadline.Current;
            inner.Dispose(); // a second dispose of the earlier scope must not undo this one
            Assert.Same(innermost, MeshDeadline.Current);
        }
    }

    [Fact]
    public async Task TheDeadline_FlowsIntoAsyncWork_AndAScopeInsideAnAsyncMethod_DoesNotLeakOut()
    {
        var time = FakeTime.Create();
        MeshDeadline? seen = null;
        using (MeshDeadline.Begin(TimeSpan.FromSeconds(3), time))
        {
            var current = MeshDeadline.Current;
            await Task.Run(() => seen = MeshDeadline.Current);
            Assert.Same(current, seen);
        }

        await BeginWithoutDisposingAsync(time);
        Assert.Null(MeshDeadline.Current);

        static async Task BeginWithoutDisposingAsync(TimeProvider time)
        {
            MeshDeadline.Begin(TimeSpan.FromSeconds(1), time); // an async method's changes to its context end with it
            await Task.Yield();
            Assert.NotNull(MeshDeadline.Current);
        }
    }
}
