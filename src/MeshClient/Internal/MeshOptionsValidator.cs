using System.Globalization;
using MeshClient.Balancing;
using MeshClient.Resilience;
using Microsoft.Extensions.Options;

namespace MeshClient.Internal;

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

        var failures = new List<string>();
        var root = path.Path;
        ValidatePolicy(failures, $"{root}:LoadBalancer", options.LoadBalancer, allowNull: false);
        ValidateRange(failures, $"{root}:PeakEwma:DecayTime", options.PeakEwma.DecayTime, TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(10));
        ValidateRange(failures, $"{root}:PeakEwma:DefaultRtt", options.PeakEwma.DefaultRtt, TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(1));
        ValidateRange(failures, $"{root}:PeakEwma:FailurePenalty", options.PeakEwma.FailurePenalty, TimeSpan.Zero, TimeSpan.FromMinutes(1));

        ResilienceSettings.Validate(failures, $"{root}:Resilience", options.Resilience);
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
            ResilienceSettings.Validate(failures, $"{prefix}:Resilience", service.Resilience);
            for (var i = 0; i < service.Endpoints.Count; i++)
            {
                var endpoint = service.Endpoints[i];
                var key = string.Create(CultureInfo.InvariantCulture, $"{prefix}:Endpoints:{i}");
                if (endpoint is null)
                {
                    failures.Add($"{key}: the endpoint is empty.");
                    continue;
                }

                if (string.IsNullOrWhiteSpace(endpoint.Address))
                {
                    failures.Add($"{key}:Address is required: an absolute http or https URI such as 'http://10.0.0.7:8080'.");
                }
                else if (!Uri.TryCreate(endpoint.Address, UriKind.Absolute, out var uri)
                    || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                    || string.IsNullOrEmpty(uri.Host))
                {
                    failures.Add($"{key}:Address '{endpoint.Address}' must be an absolute http or https URI such as 'http://10.0.0.7:8080'.");
                }
                else if (!string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
                {
                    failures.Add($"{key}:Address '{endpoint.Address}' must not have a query or fragment.");
                }

                if (endpoint.Weight is < MeshEndpointOptions.MinWeight or > MeshEndpointOptions.MaxWeight)
                {
                    failures.Add(string.Create(CultureInfo.InvariantCulture,
                        $"{key}:Weight must be between {MeshEndpointOptions.MinWeight} and {MeshEndpointOptions.MaxWeight}, was {endpoint.Weight}."));
                }
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
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
