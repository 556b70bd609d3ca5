using System.Globalization;
using Microsoft.Extensions.Options;

namespace MeshClient.Configuration;

/// <summary>
/// Validates <see cref="MeshOptions"/> at start-up and on every reload. Hand-written rather than
/// <c>[OptionsValidator]</c>-generated because every message names the exact configuration key
/// (<c>Mesh:Services:catalog:Endpoints:0:Weight</c>), which the generator cannot do for dictionary entries.
/// </summary>
internal sealed class MeshOptionsValidator(MeshConfigurationPath path) : IValidateOptions<MeshOptions>
{
    public ValidateOptionsResult Validate(string? name, MeshOptions options)
    {
        if (name != Options.DefaultName)
        {
            return ValidateOptionsResult.Skip;
        }

        var failures = new List<string>(options.BindingErrors);
        var root = path.Path;
        ValidatePolicy(failures, $"{root}:LoadBalancer", options.LoadBalancer, allowNull: false);
        ValidateRange(failures, $"{root}:PeakEwma:DecayTime", options.PeakEwma.DecayTime, TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(10));
        ValidateRange(failures, $"{root}:PeakEwma:DefaultRtt", options.PeakEwma.DefaultRtt, TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(1));
        ValidateRange(failures, $"{root}:PeakEwma:FailurePenalty", options.PeakEwma.FailurePenalty, TimeSpan.Zero, TimeSpan.FromMinutes(1));

        FeatureOptionsValidation.ValidateResilience(failures, $"{root}:Resilience", options.Resilience);
        FeatureOptionsValidation.ValidateSlowStart(failures, $"{root}:SlowStart", options.SlowStart);
        FeatureOptionsValidation.ValidateZoneRouting(failures, $"{root}:ZoneRouting", options.ZoneRouting);
        ValidateZone(failures, $"{root}:Zone", options);
        FeatureOptionsValidation.ValidateWeightedRoundRobin(failures, $"{root}:WeightedRoundRobin", options.WeightedRoundRobin);
        foreach (var (serviceName, service) in options.Services)
        {
            var prefix = $"{root}:Services:{serviceName}";
            if (string.IsNullOrWhiteSpace(serviceName) || serviceName.Contains('/', StringComparison.Ordinal) || serviceName.Contains(':', StringComparison.Ordinal))
            {
                failures.Add($"{prefix}: '{serviceName}' is not a valid service name (a host name such as 'catalog').");
            }

            if (service is null)
            {
                continue;
            }

            ValidatePolicy(failures, $"{prefix}:LoadBalancer", service.LoadBalancer, allowNull: true);
            FeatureOptionsValidation.ValidateResilience(failures, $"{prefix}:Resilience", service.Resilience);
            FeatureOptionsValidation.ValidateSlowStart(failures, $"{prefix}:SlowStart", service.SlowStart);
            FeatureOptionsValidation.ValidateZoneRouting(failures, $"{prefix}:ZoneRouting", service.ZoneRouting);
            FeatureOptionsValidation.ValidateWeightedRoundRobin(failures, $"{prefix}:WeightedRoundRobin", service.WeightedRoundRobin);
            RouteOptionsValidation.Validate(failures, prefix, serviceName, service, options);
            var ids = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var i = 0; i < service.Endpoints.Count; i++)
            {
                var endpoint = service.Endpoints[i];
                var key = string.Create(CultureInfo.InvariantCulture, $"{prefix}:Endpoints:{i}");
                if (endpoint is null)
                {
                    failures.Add($"{key}: the endpoint is empty.");
                    continue;
                }

                ValidateAddress(failures, key, endpoint.Address, ids, i);
                ValidateRange(failures, $"{key}:Weight", endpoint.Weight, MeshEndpointOptions.MinWeight, MeshEndpointOptions.MaxWeight);

                if (endpoint.HostName is { Length: > 0 } hostName
                    && (!Uri.TryCreate("http://" + hostName + "/", UriKind.Absolute, out var host)
                        || host.PathAndQuery != "/" || host.UserInfo.Length != 0 || host.Fragment.Length != 0))
                {
                    failures.Add($"{key}:HostName '{hostName}' must be a host name such as 'catalog.internal', optionally with a port.");
                }
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void ValidateAddress(List<string> failures, string key, string? address, Dictionary<string, int> ids, int index)
    {
        const string Example = "an absolute http or https URI such as 'http://10.0.0.7:8080'";
        if (string.IsNullOrWhiteSpace(address))
        {
            failures.Add($"{key}:Address is required: {Example}.");
            return;
        }

        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri))
        {
            // Uri refuses a port outside 0-65535 without saying so: say it.
            var authority = address.Split("://", 2) is [_, var rest] ? rest.Split('/', 2)[0] : string.Empty;
            var colon = authority.LastIndexOf(':');
            var port = colon >= 0 && !authority.EndsWith(']') ? authority[(colon + 1)..] : null;
            failures.Add(port is { Length: > 0 } && long.TryParse(port, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number)
                && number is < 1 or > 65535
                ? $"{key}:Address '{address}' has port {port}: the port must be between 1 and 65535."
                : $"{key}:Address '{address}' must be {Example}.");
            return;
        }

        if (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
        {
            // On Unix a rooted path is an implicit file: URI; only name a scheme the address spells out.
            var scheme = address.TrimStart().StartsWith(uri.Scheme + ":", StringComparison.OrdinalIgnoreCase) ? $" (not '{uri.Scheme}')" : string.Empty;
            failures.Add($"{key}:Address '{address}' must be {Example}{scheme}.");
        }
        else if (string.IsNullOrEmpty(uri.Host))
        {
            failures.Add($"{key}:Address '{address}' must be {Example} (it has no host).");
        }
        else if (uri.Port is < 1 or > 65535)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{key}:Address '{address}' has port {uri.Port}: the port must be between 1 and 65535."));
        }
        else if (!string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
        {
            failures.Add($"{key}:Address '{address}' must not have a query or fragment.");
        }
        else if (!ids.TryAdd(uri.GetLeftPart(UriPartial.Path), index))
        {
            // The address is the endpoint's id: a second one would be dropped, its weight lost. Use Weight instead.
            failures.Add(string.Create(CultureInfo.InvariantCulture,
                $"{key}:Address '{address}' is the same endpoint as Endpoints:{ids[uri.GetLeftPart(UriPartial.Path)]}; list an endpoint once and give it a Weight."));
        }
    }

    /// <summary>The caller's zone: a label such as <c>eu-west-1a</c>, compared with the endpoints' zones as written.</summary>
    private static void ValidateZone(List<string> failures, string key, MeshOptions options)
    {
        if (options.Zone is not { } zone)
        {
            return;
        }

        var source = options.ZoneFromEnvironment ? $"{key} (from the {MeshOptions.ZoneEnvironmentVariable} environment variable)" : key;
        if (zone.Length > MeshOptions.MaxZoneLength || zone.Trim().Length != zone.Length || zone.Any(char.IsControl))
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture,
                $"{source} '{(zone.Length > 64 ? zone[..64] + "…" : zone)}' must be a zone name such as 'eu-west-1a': at most {MeshOptions.MaxZoneLength} characters, no surrounding spaces or control characters."));
        }
    }

    private static void ValidatePolicy(List<string> failures, string key, string? value, bool allowNull)
    {
        if (value is null && allowNull)
        {
            return;
        }

        if (LoadBalancerNames.Normalize(value) is null)
        {
            failures.Add($"{key}: '{value}' is not a load balancer; use one of {string.Join(", ", LoadBalancerNames.All)}.");
        }
    }

    internal static void ValidateRange(List<string> failures, string key, int value, int min, int max)
    {
        if (value < min || value > max)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{key} must be between {min} and {max}, was {value}."));
        }
    }

    internal static void ValidateRange(List<string> failures, string key, TimeSpan value, TimeSpan min, TimeSpan max)
    {
        if (value < min || value > max)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{key} must be between {min} and {max}, was {value}."));
        }
    }
}

/// <summary>The configuration path the mesh options are bound from (for error messages).</summary>
internal sealed class MeshConfigurationPath(string path)
{
    public string Path { get; } = path;
}
