using System.Diagnostics.CodeAnalysis;
using MeshClient.Balancing;
using MeshClient.Discovery;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// A table says the service is known only once its snapshot is out: a reader between the two (a route's backend
/// check, on another thread) took a known service without a snapshot for one no provider knows, and logged it out of
/// the split (RouteHealthTests failed so under load, with an extra "no discovery provider knows it" warning).
/// </summary>
public sealed class ServiceTableResolutionTests
{
    [Fact]
    public async Task Resolution_IsKnown_OnlyOnceTheSnapshotIsPublished()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var time = new WatchedTimeProvider(FakeTime.Create());
        await using var host = MeshHost.Create(new Dictionary<string, string?>(), services =>
        {
            services.AddSingleton<TimeProvider>(time);
            services.AddSingleton<IServiceEndpointProviderFactory>(new GatedProviderFactory(gate.Task));
        });

        // Discovery answers only when the gate opens, so the table exists (Pending) before its first Apply.
        var table = host.Registry.GetTable("gated");
        Assert.Equal(ServiceResolution.Pending, table.Resolution);

        // Every clock read during the Apply (there is one between the endpoints and the snapshot) checks the invariant.
        var seenKnownWithoutSnapshot = 0;
        time.OnRead = () =>
        {
            if (table.Resolution == ServiceResolution.Known && table.Snapshot is null)
            {
                Interlocked.Increment(ref seenKnownWithoutSnapshot);
            }
        };
        gate.SetResult();
        await table.WaitForFirstResolutionAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(ServiceResolution.Known, table.Resolution);
        Assert.NotNull(table.Snapshot);
        Assert.True(time.Reads > 0, "no clock read during the Apply: the test would prove nothing");
        Assert.Equal(0, Volatile.Read(ref seenKnownWithoutSnapshot));
    }

    /// <summary>A clock that calls <see cref="OnRead"/> on each read of the time.</summary>
    private sealed class WatchedTimeProvider(TimeProvider inner) : TimeProvider
    {
        private int _reads;

        public Action? OnRead { get; set; }

        public int Reads => Volatile.Read(ref _reads);

        public override long TimestampFrequency => inner.TimestampFrequency;

        public override long GetTimestamp()
        {
            Watch();
            return inner.GetTimestamp();
        }

        public override DateTimeOffset GetUtcNow()
        {
            Watch();
            return inner.GetUtcNow();
        }

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            inner.CreateTimer(callback, state, dueTime, period);

        private void Watch()
        {
            if (OnRead is { } onRead)
            {
                Interlocked.Increment(ref _reads);
                onRead();
            }
        }
    }

    /// <summary>A provider for "gated" whose first answer waits for the test.</summary>
    private sealed class GatedProviderFactory(Task gate) : IServiceEndpointProviderFactory
    {
        public bool TryCreateProvider(ServiceEndpointQuery query, [NotNullWhen(true)] out IServiceEndpointProvider? provider)
        {
            provider = query.ServiceName == "gated" ? new Provider(gate) : null;
            return provider is not null;
        }

        private sealed class Provider(Task gate) : IServiceEndpointProvider
        {
            public async ValueTask PopulateAsync(IServiceEndpointBuilder endpoints, CancellationToken cancellationToken)
            {
                await gate.WaitAsync(cancellationToken);
                endpoints.Features.Set<IMeshServiceFeature>(new MeshServiceFeature("gated"));
                endpoints.Endpoints.Add(ServiceEndpoint.Create(new UriEndPoint(new Uri("http://10.0.0.1")), new FeatureCollection()));
            }

            public ValueTask DisposeAsync() => default;
        }
    }
}
