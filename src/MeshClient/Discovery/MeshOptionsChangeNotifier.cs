using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace MeshClient.Discovery;

/// <summary>
/// Holds the last valid <see cref="MeshOptions"/> and hands out active change tokens that fire when they change.
/// </summary>
/// <remarks>
/// It follows the options' change token sources itself rather than <see cref="IOptionsMonitor{TOptions}.OnChange"/>:
/// the monitor raises an invalid reload's <see cref="OptionsValidationException"/> on the thread that reloaded (a file
/// watcher, or an application calling <c>IConfigurationRoot.Reload()</c>) and logs nothing, and from then on its
/// <c>CurrentValue</c> throws until a valid reload. Here an invalid reload is refused with one warning naming every
/// invalid key, and the last valid options (so the last valid endpoints) keep serving.
/// </remarks>
internal sealed partial class MeshOptionsChangeNotifier : IDisposable
{
    private readonly IOptionsFactory<MeshOptions> _factory;
    private readonly ILogger _logger;
    private readonly List<IDisposable> _subscriptions = [];
    private readonly Lock _reloadLock = new();
    private CancellationTokenSource _cts = new();
    private volatile MeshOptions _current;
    private string? _rejected;
    private string _ignored = string.Empty;

    public MeshOptionsChangeNotifier(
        IOptionsFactory<MeshOptions> factory,
        IEnumerable<IOptionsChangeTokenSource<MeshOptions>> sources,
        ILogger<MeshOptionsChangeNotifier> logger)
    {
        _factory = factory;
        _logger = logger;

        // Invalid options at start fail here (and earlier with ValidateOnStart) with OptionsValidationException.
        _current = factory.Create(Options.DefaultName);
        ReportIgnoredSections(_current);
        foreach (var source in sources)
        {
            if (source.Name is null || source.Name == Options.DefaultName)
            {
                _subscriptions.Add(ChangeToken.OnChange(source.GetChangeToken, Reload));
            }
        }
    }

    /// <summary>Gets the last valid options.</summary>
    public MeshOptions Current => _current;

    /// <summary>Gets a token that fires on the next change of the options.</summary>
    public IChangeToken GetChangeToken() => new CancellationChangeToken(Volatile.Read(ref _cts).Token);

    private void Reload()
    {
        lock (_reloadLock)
        {
            MeshOptions options;
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
                    Log.ReloadRejected(_logger, reason);
                }

                return;
            }

            if (_rejected is not null)
            {
                _rejected = null;
                Log.ReloadAccepted(_logger);
            }

            _current = options;
            ReportIgnoredSections(options);
            NotifyChanged();
        }
    }

    private void ReportIgnoredSections(MeshOptions options)
    {
        // Said once per distinct set, like a refusal: a reload that changes something else says nothing again.
        var ignored = string.Join(";", options.IgnoredSections);
        if (ignored == _ignored)
        {
            return;
        }

        _ignored = ignored;
        foreach (var (path, builder) in options.IgnoredSections)
        {
            Log.SectionIgnored(_logger, path, builder);
        }
    }

    private void NotifyChanged()
    {
        // The replaced source is cancelled, never disposed: GetChangeToken may have read it just before the exchange,
        // and reading Token of a disposed source throws ObjectDisposedException (a reload racing a token read). A
        // source with no timer and no wait handle holds nothing that needs disposing; the collector takes it.
        var old = Interlocked.Exchange(ref _cts, new CancellationTokenSource());
        old.Cancel();
    }

    public void Dispose()
    {
        foreach (var subscription in _subscriptions)
        {
            subscription.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(11, LogLevel.Warning, "Mesh configuration reload refused; the last valid configuration keeps serving: {Reason}", EventName = "ConfigurationReloadRejected")]
        public static partial void ReloadRejected(ILogger logger, string reason);

        [LoggerMessage(12, LogLevel.Information, "Mesh configuration reload accepted after an earlier refusal.", EventName = "ConfigurationReloadAccepted")]
        public static partial void ReloadAccepted(ILogger logger);

        [LoggerMessage(14, LogLevel.Warning, "Mesh configuration section {Section} is not read: {Builder} was not called. It is ignored.", EventName = "ConfigurationSectionIgnored")]
        public static partial void SectionIgnored(ILogger logger, string section, string builder);
    }
}
