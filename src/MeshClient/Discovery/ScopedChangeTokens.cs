using Microsoft.Extensions.Primitives;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Discovery;

/// <summary>
/// Keeps a discovery provider's change tokens from piling callbacks onto a long-lived token. The resolver combines
/// a service's tokens in a <see cref="CompositeChangeToken"/>, which registers on every inner token and removes those
/// registrations only when one of them fires; so each service ever resolved left a registration (holding its
/// watcher and providers) on the mesh options token until the next options change. Instead, the provider hands the
/// resolver a token of its own, linked to the tokens it would have added, and removes the links when it populates
/// again or is disposed (the resolver disposes the providers of a service nobody asks for any more).
/// </summary>
internal sealed class ScopedChangeTokens(ScopedChangeTokens.Counter? counter = null) : IDisposable
{
    private readonly Lock _lock = new();
    private readonly List<IDisposable> _links = [];
    private bool _disposed;

    /// <summary>
    /// Starts a populate call: the links of the previous one go (its token has fired, or its source is no longer
    /// served), and <paramref name="token"/> is linked to a new token that is added to <paramref name="endpoints"/>.
    /// </summary>
    public void AddChangeToken(IServiceEndpointBuilder endpoints, IChangeToken token)
    {
        if (!token.ActiveChangeCallbacks)
        {
            endpoints.AddChangeToken(token); // polled by the resolver: nothing is registered on it
            return;
        }

        var changed = new CancellationTokenSource();
        lock (_lock)
        {
            DisposeLinks();
            if (_disposed)
            {
                return;
            }

            // Fires at once (synchronously) if the token has already changed.
            _links.Add(token.RegisterChangeCallback(static s => ((CancellationTokenSource)s!).Cancel(), changed));
            counter?.Add(1);
        }

        if (token.HasChanged)
        {
            // A token whose source was disposed as it fired accepts no callback (CancellationChangeToken): never miss it.
            changed.Cancel();
        }

        endpoints.AddChangeToken(new CancellationChangeToken(changed.Token));
    }

    private void DisposeLinks()
    {
        foreach (var link in _links)
        {
            link.Dispose();
        }

        counter?.Add(-_links.Count);
        _links.Clear();
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            DisposeLinks();
        }
    }

    /// <summary>Counts the links held by several <see cref="ScopedChangeTokens"/> (diagnostics and tests).</summary>
    internal sealed class Counter
    {
        private int _value;

        public int Value => Volatile.Read(ref _value);

        public void Add(int delta) => Interlocked.Add(ref _value, delta);
    }
}
