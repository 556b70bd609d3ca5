using System.Globalization;
using MeshClient.Configuration;
using Microsoft.Extensions.Options;

namespace MeshClient.Kubernetes;

/// <summary>
/// Validates <see cref="KubernetesOptions"/> at start-up and on every reload; every message names the configuration
/// key (<c>Mesh:Kubernetes:Namespace</c>). An invalid reload is refused and the last valid options keep serving.
/// </summary>
internal sealed class KubernetesOptionsValidator(KubernetesConfigurationPath path) : IValidateOptions<KubernetesOptions>
{
    public ValidateOptionsResult Validate(string? name, KubernetesOptions options)
    {
        if (name != Options.DefaultName)
        {
            return ValidateOptionsResult.Skip;
        }

        var failures = new List<string>(options.BindingErrors);
        var root = path.Path;
        if (options.Namespace is { } ns && !KubernetesServiceName.IsLabel(ns))
        {
            failures.Add($"{root}:Namespace '{ns}' is not a namespace name (a DNS label: lower-case letters, digits and '-', at most 63 characters).");
        }

        if (string.IsNullOrWhiteSpace(options.ClusterDomain)
            || options.ClusterDomain.Split('.').Any(label => !KubernetesServiceName.IsLabel(label)))
        {
            failures.Add($"{root}:ClusterDomain '{options.ClusterDomain}' is not a domain name such as 'cluster.local'.");
        }

        if (!string.IsNullOrEmpty(options.KubeConfigPath) && !File.Exists(options.KubeConfigPath))
        {
            failures.Add($"{root}:KubeConfigPath: the file '{options.KubeConfigPath}' does not exist.");
        }

        if (options.Context is { Length: 0 })
        {
            failures.Add($"{root}:Context must not be empty.");
        }

        foreach (var (service, settings) in options.Services)
        {
            if (settings.PortName is { } portName && (portName.Length is 0 or > 63 || portName.Any(char.IsWhiteSpace)))
            {
                failures.Add($"{root}:Services:{service}:PortName '{portName}' is not a port name (at most 63 characters, no spaces).");
            }
        }

        MeshOptionsValidator.ValidateRange(failures, $"{root}:RequestTimeout", options.RequestTimeout, TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(5));
        MeshOptionsValidator.ValidateRange(failures, $"{root}:WatchTimeout", options.WatchTimeout, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));
        MeshOptionsValidator.ValidateRange(failures, $"{root}:RetryBaseDelay", options.RetryBaseDelay, TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(10));
        MeshOptionsValidator.ValidateRange(failures, $"{root}:RetryMaxDelay", options.RetryMaxDelay, TimeSpan.FromMilliseconds(1), TimeSpan.FromHours(1));
        if (options.RetryMaxDelay < options.RetryBaseDelay)
        {
            failures.Add($"{root}:RetryMaxDelay ({options.RetryMaxDelay}) must not be less than {root}:RetryBaseDelay ({options.RetryBaseDelay}).");
        }

        MeshOptionsValidator.ValidateRange(failures, $"{root}:WatchIdleTimeout", options.WatchIdleTimeout, TimeSpan.FromSeconds(1), TimeSpan.FromDays(1));
        if (options.MaxResponseBytes is < 1024)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{root}:MaxResponseBytes must be at least 1024, was {options.MaxResponseBytes}."));
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

/// <summary>The configuration path the Kubernetes options are bound from (<c>Mesh:Kubernetes</c>), for error messages.</summary>
internal sealed class KubernetesConfigurationPath(string path)
{
    public string Path { get; } = path;
}
