using Microsoft.Extensions.Primitives;

namespace MeshClient.Discovery;

/// <summary>What a provider's watch of one service last learned (replaced whole on every answer).</summary>
internal interface IWatchedService
{
    /// <summary>Gets a value indicating whether the provider has answered at least once.</summary>
    bool HasAnswer { get; }

    /// <summary>Gets a value indicating whether the provider knows the service.</summary>
    bool Known { get; }

    /// <summary>Gets the token that fires when the next answer replaces this one.</summary>
    IChangeToken ChangeToken { get; }
}

/// <summary>A provider's running watch of one service (a Consul blocking query, a Kubernetes watch).</summary>
/// <typeparam name="TState">What the watch learned.</typeparam>
internal interface IServiceWatch<out TState>
    where TState : IWatchedService
{
    /// <summary>Gets what the watch last learned.</summary>
    TState State { get; }

    /// <summary>Gets a task that completes when the first query or list has ended, answered or not.</summary>
    Task FirstAttempt { get; }
}
