using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Discovery;

/// <summary>
/// The endpoint provider of one service over a provider's shared watch (Consul, Kubernetes): a thin view that holds
/// no state of its own but its claim on the watch. It leaves a service that an earlier provider knows alone, waits
/// for the watch's first answer on first use (bounded by the provider's request timeout), and never throws from
/// there on: a provider unreachable at first use leaves the builder empty (other providers may know the service)
/// with a token that fires once it answers.
/// </summary>
/// <typeparam name="TWatch">The provider's watch.</typeparam>
/// <typeparam name="TState">What the watch learns.</typeparam>
internal abstract class WatchedServiceProvider<TWatch, TState> : IServiceEndpointProvider
    where TWatch : class, IServiceWatch<TState>
    where TState : IWatchedService
{
    private readonly WatchLease<TWatch> _lease;

    /// <summary>Creates the provider; the watch is acquired on first use and released on dispose.</summary>
    /// <param name="acquire">Starts or joins the service's watch.</param>
    /// <param name="release">Leaves it.</param>
    /// <param name="providerName">The provider's name (<see cref="IMeshServiceFeature"/>).</param>
    protected WatchedServiceProvider(Func<TWatch> acquire, Action<TWatch> release, string providerName)
    {
        _lease = new WatchLease<TWatch>(acquire, release);
        ProviderName = providerName;
    }

    /// <summary>Gets the provider's name.</summary>
    public string ProviderName { get; }

    public async ValueTask PopulateAsync(IServiceEndpointBuilder endpoints, CancellationToken cancellationToken)
    {
        if (endpoints.Endpoints.Count != 0)
        {
            // An earlier provider (static configuration) knows the service: no need to watch it.
            return;
        }

        var watch = _lease.Get();
        if (watch is null)
        {
            return;
        }

        if (!watch.State.HasAnswer)
        {
            await watch.FirstAttempt.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        var state = watch.State;
        endpoints.AddChangeToken(state.ChangeToken);
        if (!state.Known)
        {
            return;
        }

        endpoints.Features.Set<IMeshServiceFeature>(new MeshServiceFeature(ProviderName));
        AddEndpoints(state, endpoints);
    }

    /// <summary>Adds the endpoints of a service the provider knows.</summary>
    /// <param name="state">What the watch learned.</param>
    /// <param name="endpoints">The builder.</param>
    protected abstract void AddEndpoints(TState state, IServiceEndpointBuilder endpoints);

    public ValueTask DisposeAsync()
    {
        _lease.Release();
        return default;
    }

    public override string ToString() => ProviderName;
}
