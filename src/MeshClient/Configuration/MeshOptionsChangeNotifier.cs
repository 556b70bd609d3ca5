using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshClient.Configuration;

/// <summary>
/// The last valid <see cref="MeshOptions"/> (<see cref="LastValidOptions{TOptions}"/>), which also reports the optional
/// sections that are present but not read (<c>Mesh:Consul</c> without <c>AddConsul()</c>, event 14).
/// </summary>
internal sealed partial class MeshOptionsChangeNotifier : LastValidOptions<MeshOptions>
{
    private string _ignored = string.Empty;

    public MeshOptionsChangeNotifier(
        IOptionsFactory<MeshOptions> factory,
        IEnumerable<IOptionsChangeTokenSource<MeshOptions>> sources,
        MeshConfigurationPath path,
        ILogger<MeshOptionsChangeNotifier> logger)
        : base(factory, sources, logger, path.Path)
    {
        OnAccepted(Current);
    }

    protected override void OnAccepted(MeshOptions options)
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
            Log.SectionIgnored(Logger, path, builder);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(14, LogLevel.Warning, "Mesh configuration section {Section} is not read: {Builder} was not called. It is ignored.", EventName = "ConfigurationSectionIgnored")]
        public static partial void SectionIgnored(ILogger logger, string section, string builder);
    }
}
