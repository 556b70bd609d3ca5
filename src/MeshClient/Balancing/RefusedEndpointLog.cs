using MeshClient.Security;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Balancing;

/// <summary>
/// Checks discovered endpoints against <c>Mesh:AllowedNetworks</c> / <c>AllowedHostNames</c> and logs a refused one
/// once (event 110) until discovery stops returning it.
/// </summary>
/// <param name="serviceName">The service, for the log line.</param>
/// <param name="logger">Where refusals are logged.</param>
internal sealed partial class RefusedEndpointLog(string serviceName, ILogger logger)
{
    private readonly Dictionary<string, int> _refused = new(StringComparer.Ordinal);
    private int _generation;

    /// <summary>Whether <paramref name="filter"/> allows <paramref name="endpoint"/>; a refusal is logged once.</summary>
    /// <param name="filter">The address filter of the current options.</param>
    /// <param name="endpoint">The discovered endpoint.</param>
    public bool Allows(EndpointAddressFilter filter, ServiceEndpoint endpoint)
    {
        if (filter.Allows(endpoint, out var reason))
        {
            return true;
        }

        var key = endpoint.EndPoint.ToString() ?? string.Empty;
        lock (_refused)
        {
            if (_refused.TryAdd(key, _generation))
            {
                Log.EndpointNotAllowed(logger, serviceName, key, reason!);
            }
            else
            {
                _refused[key] = _generation;
            }
        }

        return false;
    }

    /// <summary>Ends a pass over discovery's answer: endpoints it no longer returned are forgotten (logged again if they come back).</summary>
    public void EndPass()
    {
        lock (_refused)
        {
            foreach (var (key, generation) in _refused)
            {
                if (generation != _generation)
                {
                    _refused.Remove(key);
                }
            }

            _generation++;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(110, LogLevel.Warning, "Service {Service}: dropped the discovered endpoint {Endpoint}: {Reason}.", EventName = "EndpointNotAllowed")]
        public static partial void EndpointNotAllowed(ILogger logger, string service, string endpoint, string reason);
    }
}
