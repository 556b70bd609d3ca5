using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace MeshClient.Discovery;

/// <summary>
/// Holds the last valid <see cref="MeshOptions"/> and hands out active change tokens that fire when they change.
/// <see cref="IOptionsMonitor{TOptions}"/> validates a reload before it notifies, so an invalid reload never
/// reaches this class: the last valid options keep serving.
/// </summary>
internal sealed class MeshOptionsChangeNotifier : IDisposable
{
    private readonly IDisposable? _subscription;
    private CancellationTokenSource _cts = new();
    private volatile MeshOptions _current;

    public MeshOptionsChangeNotifier(IOptionsMonitor<MeshOptions> monitor)
    {
        _current = monitor.CurrentValue;
        _subscription = monitor.OnChange((options, name) =>
        {
            if (name == Options.DefaultName)
            {
                _current = options;
                NotifyChanged();
            }
        });
    }

    /// <summary>Gets the last valid options.</summary>
    public MeshOptions Current => _current;

    /// <summary>Gets a token that fires on the next change of the options.</summary>
    public IChangeToken GetChangeToken() => new CancellationChangeToken(Volatile.Read(ref _cts).Token);

    private void NotifyChanged()
    {
        var old = Interlocked.Exchange(ref _cts, new CancellationTokenSource());
        old.Cancel();
        old.Dispose();
    }

    public void Dispose()
    {
        _subscription?.Dispose();
        _cts.Dispose();
    }
}
