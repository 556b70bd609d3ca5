using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace MeshClient.Configuration;

/// <summary>
/// Holds the last valid <typeparamref name="TOptions"/> and hands out active change tokens that fire when they change:
/// the one "last valid options" holder of the mesh (<c>Mesh</c>) and of its optional sections (<c>Mesh:Consul</c>,
/// <c>Mesh:Kubernetes</c>).
/// </summary>
/// <remarks>
/// It follows the options' change token sources itself rather than <see cref="IOptionsMonitor{TOptions}.OnChange"/>:
/// the monitor raises an invalid reload's <see cref="OptionsValidationException"/> on the thread that reloaded (a file
/// watcher, or an application calling <c>IConfigurationRoot.Reload()</c>) and logs nothing, and from then on its
/// <c>CurrentValue</c> throws until a valid reload. Here an invalid reload is refused with one warning naming every
/// invalid key, and the last valid options keep serving.
/// </remarks>
/// <typeparam name="TOptions">The options type.</typeparam>
internal class LastValidOptions<TOptions> : IDisposable
    where TOptions : class
{
    private readonly IOptionsFactory<TOptions> _factory;
    private readonly List<IDisposable> _subscriptions = [];
    private readonly Lock _reloadLock = new();
    private CancellationTokenSource _cts = new();
    private volatile TOptions _current;
    private string? _rejected;

    /// <summary>Creates the holder; invalid options at start fail here with <see cref="OptionsValidationException"/>.</summary>
    /// <param name="factory">Creates (binds and validates) the options.</param>
    /// <param name="sources">The change token sources of the options.</param>
    /// <param name="logger">Where a refused reload is reported (event 11) and a later accepted one (event 12).</param>
    /// <param name="section">The configuration section, for the log lines (<c>Mesh</c>, <c>Mesh:Consul</c>).</param>
    public LastValidOptions(
        IOptionsFactory<TOptions> factory,
        IEnumerable<IOptionsChangeTokenSource<TOptions>> sources,
        ILogger logger,
        string section)
    {
        _factory = factory;
        Logger = logger;
        Section = section;
        _current = factory.Create(Options.DefaultName);
        foreach (var source in sources)
        {
            if (source.Name is null || source.Name == Options.DefaultName)
            {
                _subscriptions.Add(ChangeToken.OnChange(source.GetChangeToken, Reload));
            }
        }
    }

    /// <summary>Gets the last valid options.</summary>
    public TOptions Current => _current;

    /// <summary>Gets the section the options are bound from, for log lines.</summary>
    protected string Section { get; }

    /// <summary>Gets the logger of the holder.</summary>
    protected ILogger Logger { get; }

    /// <summary>Gets a token that fires on the next change of the options.</summary>
    public IChangeToken GetChangeToken() => new CancellationChangeToken(Volatile.Read(ref _cts).Token);

    /// <summary>Called with valid options, at start and after every accepted reload, before the change token fires.</summary>
    /// <param name="options">The options now current.</param>
    protected virtual void OnAccepted(TOptions options)
    {
    }

    private void Reload()
    {
        lock (_reloadLock)
        {
            TOptions options;
            try
            {
                options = _factory.Create(Options.DefaultName);
            }
            catch (OptionsValidationException ex)
            {
                // Logged once per distinct refusal: a file saved twice with the same mistake says it once.
                var reason = string.Join(" ", ex.Failures);
                if (reason != _rejected)
                {
                    _rejected = reason;
                    LastValidOptionsLog.ReloadRejected(Logger, Section, reason);
                }

                return;
            }

            if (_rejected is not null)
            {
                _rejected = null;
                LastValidOptionsLog.ReloadAccepted(Logger, Section);
            }

            _current = options;
            OnAccepted(options);

            // The replaced source is cancelled, never disposed: GetChangeToken may have read it just before the
            // exchange, and reading Token of a disposed source throws ObjectDisposedException. A source with no timer
            // and no wait handle holds nothing that needs disposing; the collector takes it.
            var old = Interlocked.Exchange(ref _cts, new CancellationTokenSource());
            old.Cancel();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Stops following the change token sources.</summary>
    /// <param name="disposing">Whether this is a call of <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var subscription in _subscriptions)
            {
                subscription.Dispose();
            }
        }
    }
}

/// <summary>The log lines of <see cref="LastValidOptions{TOptions}"/> (a generic type cannot hold them).</summary>
internal static partial class LastValidOptionsLog
{
    [LoggerMessage(11, LogLevel.Warning, "{Section} configuration reload refused; the last valid configuration keeps serving: {Reason}", EventName = "ConfigurationReloadRejected")]
    public static partial void ReloadRejected(ILogger logger, string section, string reason);

    [LoggerMessage(12, LogLevel.Information, "{Section} configuration reload accepted after an earlier refusal.", EventName = "ConfigurationReloadAccepted")]
    public static partial void ReloadAccepted(ILogger logger, string section);
}
