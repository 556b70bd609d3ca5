using MeshClient.Discovery;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Tests.Discovery;

/// <summary>
/// A provider's link to a long-lived change token: the resolver gets a token of the provider's own that fires with
/// the source, and the provider holds at most one registration on the source, removed when it populates again or
/// is disposed, however many providers come and go.
/// </summary>
public sealed class ScopedChangeTokensTests
{
    [Fact]
    public void HandedToken_FiresWithTheSource()
    {
        var source = new CountingChangeToken();
        using var scoped = new ScopedChangeTokens();
        var builder = new Builder();
        scoped.AddChangeToken(builder, source);

        var handed = Assert.Single(builder.Tokens);
        Assert.NotSame(source, handed);
        Assert.False(handed.HasChanged);
        source.Fire();
        Assert.True(handed.HasChanged);
    }

    [Fact]
    public void ProvidersComingAndGoing_LeaveNoRegistrationOnTheSource()
    {
        var source = new CountingChangeToken();
        var counter = new ScopedChangeTokens.Counter();
        for (var i = 0; i < 1000; i++)
        {
            using var scoped = new ScopedChangeTokens(counter);
            scoped.AddChangeToken(new Builder(), source);
            scoped.AddChangeToken(new Builder(), source); // populated again: the first link goes
            Assert.Equal(1, source.Live);
            Assert.Equal(1, counter.Value);
        }

        Assert.Equal(0, source.Live);
        Assert.Equal(0, counter.Value);
        Assert.Equal(2000, source.Registered);
    }

    [Fact]
    public void SourceAlreadyChanged_HandedTokenHasChanged_EvenWhenTheSourceTakesNoCallback()
    {
        var source = new CountingChangeToken { AcceptsCallbacks = false };
        source.Fire();
        using var scoped = new ScopedChangeTokens();
        var builder = new Builder();
        scoped.AddChangeToken(builder, source);
        Assert.True(Assert.Single(builder.Tokens).HasChanged);
    }

    [Fact]
    public void PolledToken_IsPassedAsItIs()
    {
        var polled = new CountingChangeToken { Active = false };
        using var scoped = new ScopedChangeTokens();
        var builder = new Builder();
        scoped.AddChangeToken(builder, polled);
        Assert.Same(polled, Assert.Single(builder.Tokens));
        Assert.Equal(0, polled.Registered);
    }

    /// <summary>A change token that counts the callbacks registered on it and still registered.</summary>
    private sealed class CountingChangeToken : IChangeToken
    {
        private readonly CancellationTokenSource _cts = new();
        private int _live;

        public bool Active { get; init; } = true;

        public bool AcceptsCallbacks { get; init; } = true;

        public int Live => Volatile.Read(ref _live);

        public int Registered { get; private set; }

        public bool HasChanged => _cts.IsCancellationRequested;

        public bool ActiveChangeCallbacks => Active;

        public void Fire() => _cts.Cancel();

        public IDisposable RegisterChangeCallback(Action<object?> callback, object? state)
        {
            Registered++;
            if (!AcceptsCallbacks)
            {
                return new Registration(null);
            }

            Interlocked.Increment(ref _live);
            var registration = _cts.Token.Register(callback, state);
            return new Registration(() =>
            {
                registration.Dispose();
                Interlocked.Decrement(ref _live);
            });
        }

        private sealed class Registration(Action? dispose) : IDisposable
        {
            private Action? _dispose = dispose;

            public void Dispose() => Interlocked.Exchange(ref _dispose, null)?.Invoke();
        }
    }

    private sealed class Builder : IServiceEndpointBuilder
    {
        public List<IChangeToken> Tokens { get; } = [];

        public IList<ServiceEndpoint> Endpoints { get; } = [];

        public IFeatureCollection Features { get; } = new FeatureCollection();

        public void AddChangeToken(IChangeToken changeToken) => Tokens.Add(changeToken);
    }
}
