using Microsoft.Extensions.Options;

namespace MeshClient.Consul;

/// <summary>
/// The last valid <see cref="ConsulOptions"/>: after an invalid reload <see cref="IOptionsMonitor{TOptions}.CurrentValue"/>
/// throws on every read until a valid one, while <see cref="IOptionsMonitor{TOptions}.OnChange"/> is raised only for
/// valid options. Shared by the Consul client and the filter that builds its handler (which cannot depend on the
/// client: the client needs the factory that runs the filter).
/// </summary>
internal sealed class ConsulOptionsHolder : IDisposable
{
    private readonly IDisposable? _subscription;
    private volatile ConsulOptions _current;

    public ConsulOptionsHolder(IOptionsMonitor<ConsulOptions> options)
    {
        _current = options.CurrentValue;
        _subscription = options.OnChange((value, name) =>
        {
            if (name == Options.DefaultName)
            {
                _current = value;
            }
        });
    }

    /// <summary>Gets the last valid options.</summary>
    public ConsulOptions Current => _current;

    public void Dispose() => _subscription?.Dispose();
}
