using System.Globalization;
using MeshClient.Balancing;
using MeshClient.Configuration;

namespace MeshDemo;

/// <summary>The demo's command line.</summary>
internal sealed record DemoOptions(TimeSpan Duration, int RequestsPerSecond, string? Policy, bool Plain, bool Help, Uri? Consul = null, bool Kubernetes = false, int? StatusPort = null, int? Canary = null, bool Zones = false)
{
    public static readonly TimeSpan DefaultDuration = TimeSpan.FromSeconds(20);

    public const string Usage = """
        Usage: dotnet run --project samples/MeshDemo -- [options]

          --duration <time>   how long to drive traffic: 20s (default), 90s, 2m, 1500ms (1s to 1h)
          --rps <n>           requests per second sent to the "catalog" service (default 200, 1 to 5000)
          --policy <name>     load balancer: PeakEwma (default), LeastRequest, RoundRobin, Random
          --plain             print plain periodic lines instead of the live table (automatic when
                              the output is not a terminal)
          --consul <url>      discover "catalog" through the Consul agent at <url> (the demo registers
                              its backends there) instead of the embedded configuration
          --kubernetes        discover "catalog" from EndpointSlices served by a Kubernetes API stand-in
                              that the demo starts on 127.0.0.1 (one pod per backend, weight 1 each)
          --status-port <n>   serve the status page (MeshClient.AspNetCore) at http://127.0.0.1:<n>/mesh
                              while the demo runs (loopback only)
          --canary <percent>  start a v2 set of instances (service "catalog-v2") and give it that share
                              of the calls through a route split (Mesh:Services:catalog:Routes), 0 to 100
          --zones             zone-aware routing: the caller in zone-a with one instance (alpha), three more
                              in zone-b; alpha turns 30 ms slower half-way through and calls spill to zone-b
          --help              show this help
        """;

    /// <summary>Parses the arguments, or returns an error message.</summary>
    public static DemoOptions Parse(string[] args, out string? error)
    {
        error = null;
        var options = new DemoOptions(DefaultDuration, 200, null, false, false);
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            string? Value()
            {
                if (i + 1 < args.Length)
                {
                    return args[++i];
                }

                return null;
            }

            switch (arg)
            {
                case "--duration" or "-d":
                    if (Value() is not { } text || !TryParseDuration(text, out var duration))
                    {
                        error = "--duration needs a time such as 20s, 2m or 1500ms, between 1s and 1h.";
                        return options;
                    }

                    options = options with { Duration = duration };
                    break;
                case "--rps":
                    if (!int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out var rps) || rps is < 1 or > 5000)
                    {
                        error = "--rps needs a number from 1 to 5000.";
                        return options;
                    }

                    options = options with { RequestsPerSecond = rps };
                    break;
                case "--policy":
                    var policy = Value();
                    var known = new[] { LoadBalancerNames.PeakEwma, LoadBalancerNames.LeastRequest, LoadBalancerNames.RoundRobin, LoadBalancerNames.Random }
                        .FirstOrDefault(p => string.Equals(p, policy, StringComparison.OrdinalIgnoreCase));
                    if (known is null)
                    {
                        error = "--policy needs one of PeakEwma, LeastRequest, RoundRobin, Random.";
                        return options;
                    }

                    options = options with { Policy = known };
                    break;
                case "--consul":
                    if (!Uri.TryCreate(Value(), UriKind.Absolute, out var consul) || (consul.Scheme != Uri.UriSchemeHttp && consul.Scheme != Uri.UriSchemeHttps))
                    {
                        error = "--consul needs the absolute http or https address of a Consul agent, such as http://127.0.0.1:8500.";
                        return options;
                    }

                    options = options with { Consul = consul };
                    break;
                case "--kubernetes":
                    options = options with { Kubernetes = true };
                    break;
                case "--status-port":
                    if (!int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
                    {
                        error = "--status-port needs a TCP port from 1 to 65535.";
                        return options;
                    }

                    options = options with { StatusPort = port };
                    break;
                case "--canary":
                    if (!int.TryParse(Value()?.TrimEnd('%'), NumberStyles.None, CultureInfo.InvariantCulture, out var canary) || canary is < 0 or > 100)
                    {
                        error = "--canary needs the percentage of calls the v2 instances take, from 0 to 100.";
                        return options;
                    }

                    options = options with { Canary = canary };
                    break;
                case "--zones":
                    options = options with { Zones = true };
                    break;
                case "--plain":
                    options = options with { Plain = true };
                    break;
                case "--help" or "-h" or "-?":
                    options = options with { Help = true };
                    break;
                default:
                    error = $"Unknown argument '{arg}'.";
                    return options;
            }
        }

        if (options.Consul is not null && options.Kubernetes)
        {
            error = "--consul and --kubernetes are two ways to discover the same service: choose one.";
        }
        else if (options.Canary is not null && (options.Consul is not null || options.Kubernetes))
        {
            error = "--canary declares its v2 instances in the embedded configuration: it does not go with --consul or --kubernetes.";
        }
        else if (options.Zones && (options.Consul is not null || options.Kubernetes))
        {
            error = "--zones runs with the embedded configuration (it gives each instance its zone): leave out --consul and --kubernetes.";
        }

        return options;
    }

    /// <summary>Parses <c>1500ms</c>, <c>20s</c>, <c>2m</c>, <c>1h</c>, a bare number of seconds, or <c>hh:mm:ss</c>.</summary>
    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = default;
        text = text.Trim();
        (string Suffix, double Scale)[] units = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)];
        var parsed = false;
        foreach (var (suffix, scale) in units)
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)
                && double.TryParse(text.AsSpan(0, text.Length - suffix.Length), NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                duration = TimeSpan.FromSeconds(value * scale);
                parsed = true;
                break;
            }
        }

        if (!parsed)
        {
            if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds))
            {
                duration = TimeSpan.FromSeconds(seconds);
            }
            else if (!TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out duration))
            {
                return false;
            }
        }

        return duration >= TimeSpan.FromSeconds(1) && duration <= TimeSpan.FromHours(1);
    }
}
