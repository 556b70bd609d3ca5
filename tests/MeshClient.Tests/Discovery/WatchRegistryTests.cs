using MeshClient.Discovery;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Discovery;

/// <summary>
/// The reference-counted watches that Consul and Kubernetes share: one watch per service whatever the number of
/// users, kept through the idle timeout after its last user leaves, ended after it, and all ended on dispose.
/// </summary>
public sealed class WatchRegistryTests
{
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(30);

    [Fact]
    public void Acquire_StartsOneWatchPerService_WhateverTheUsers()
    {
        var (registry, started, _) = Create();

        var a = registry.Acquire("catalog");
        var b = registry.Acquire("CATALOG");
        var c = registry.Acquire("orders");

        Assert.Same(a, b);
        Assert.NotSame(a, c);
        Assert.Equal(2, started.Count);
        Assert.Equal(2, registry.Count);
        Assert.Same(a, registry.Find("catalog"));
        Assert.Null(registry.Find("billing"));
    }

    [Fact]
    public void LastRelease_EndsTheWatch_AfterTheIdleTimeout_NotBefore()
    {
        var (registry, _, time) = Create();
        var watch = registry.Acquire("catalog");
        registry.Acquire("catalog");

        registry.Release("catalog", watch);
        time.Advance(Idle * 2);
        Assert.False(watch.Disposed); // one user is left: no countdown

        registry.Release("catalog", watch);
        time.Advance(Idle - TimeSpan.FromSeconds(1));
        Assert.False(watch.Disposed);
        time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(watch.Disposed);
        Assert.Equal(0, registry.Count);
        Assert.NotSame(watch, registry.Acquire("catalog")); // a new user starts a new watch
    }

    [Fact]
    public void AcquireWithinTheIdleTimeout_KeepsTheRunningWatch()
    {
        var (registry, started, time) = Create();
        var watch = registry.Acquire("catalog");
        registry.Release("catalog", watch);
        time.Advance(Idle / 2);

        Assert.Same(watch, registry.Acquire("catalog"));
        time.Advance(Idle * 2);

        Assert.False(watch.Disposed);
        Assert.Single(started);
    }

    [Fact]
    public void Release_OfAWatchThatIsNotTheRunningOne_IsIgnored()
    {
        var (registry, _, time) = Create();
        var watch = registry.Acquire("catalog");

        registry.Release("catalog", new FakeWatch("catalog"));
        registry.Release("orders", watch);
        time.Advance(Idle * 2);

        Assert.False(watch.Disposed);
        Assert.Equal(1, registry.Count);
    }

    [Fact]
    public void Dispose_EndsEveryWatch_AndRefusesNewUsers()
    {
        var (registry, _, time) = Create();
        var a = registry.Acquire("catalog");
        var b = registry.Acquire("orders");
        registry.Release("orders", b);

        registry.Dispose();
        time.Advance(Idle * 2); // the pending idle timer of "orders" no longer matters

        Assert.True(a.Disposed);
        Assert.True(b.Disposed);
        Assert.Equal(1, b.DisposeCount);
        Assert.Empty(registry.Watches());
        Assert.Throws<ObjectDisposedException>(() => registry.Acquire("catalog"));
        registry.Release("catalog", a); // after dispose: nothing happens
    }

    private static (WatchRegistry<string, FakeWatch> Registry, List<FakeWatch> Started, FakeTimeProvider Time) Create()
    {
        var time = new FakeTimeProvider();
        var started = new List<FakeWatch>();
        var registry = new WatchRegistry<string, FakeWatch>(
            name =>
            {
                var watch = new FakeWatch(name);
                started.Add(watch);
                return watch;
            },
            time,
            () => Idle,
            StringComparer.OrdinalIgnoreCase);
        return (registry, started, time);
    }

    private sealed class FakeWatch(string name) : IDisposable
    {
        public string Name { get; } = name;

        public int DisposeCount { get; private set; }

        public bool Disposed => DisposeCount > 0;

        public void Dispose() => DisposeCount++;
    }
}
