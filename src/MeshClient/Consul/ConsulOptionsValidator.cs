using System.Globalization;
using MeshClient.Configuration;
using Microsoft.Extensions.Options;

namespace MeshClient.Consul;

/// <summary>
/// Validates <see cref="ConsulOptions"/> at start-up and on every reload; every message names the configuration key
/// (<c>Mesh:Consul:Address</c>). An invalid reload is refused and the last valid options keep serving.
/// </summary>
internal sealed class ConsulOptionsValidator(ConsulConfigurationPath path) : IValidateOptions<ConsulOptions>
{
    public ValidateOptionsResult Validate(string? name, ConsulOptions options)
    {
        if (name != Options.DefaultName)
        {
            return ValidateOptionsResult.Skip;
        }

        var failures = new List<string>(options.BindingErrors);
        var root = path.Path;
        if (string.IsNullOrWhiteSpace(options.Address)
            || !Uri.TryCreate(options.Address, UriKind.Absolute, out var address)
            || (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps)
            || string.IsNullOrEmpty(address.Host))
        {
            failures.Add($"{root}:Address '{options.Address}' must be an absolute http or https URI such as 'http://127.0.0.1:8500'.");
        }
        else if (!string.IsNullOrEmpty(address.Query) || !string.IsNullOrEmpty(address.Fragment) || !string.IsNullOrEmpty(address.UserInfo))
        {
            failures.Add($"{root}:Address must not have user info, a query or a fragment; put the ACL token in {root}:Token.");
        }

        if (options.Token is { } token && (token.Length == 0 || token.Any(char.IsControl)))
        {
            // The value is never echoed.
            failures.Add($"{root}:Token must be a non-empty value without control characters.");
        }

        if (!string.Equals(options.Scheme, Uri.UriSchemeHttp, StringComparison.Ordinal) && !string.Equals(options.Scheme, Uri.UriSchemeHttps, StringComparison.Ordinal))
        {
            failures.Add($"{root}:Scheme '{options.Scheme}' must be 'http' or 'https'.");
        }

        for (var i = 0; i < options.Tags.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(options.Tags[i]))
            {
                failures.Add(string.Create(CultureInfo.InvariantCulture, $"{root}:Tags:{i} must not be empty."));
            }
        }

        MeshOptionsValidator.ValidateRange(failures, $"{root}:Wait", options.Wait, TimeSpan.FromSeconds(1), ConsulBlockingRules.MaxWait);
        MeshOptionsValidator.ValidateRange(failures, $"{root}:RequestTimeout", options.RequestTimeout, TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(5));
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

        ValidateFile(failures, $"{root}:CaCertificateFile", options.CaCertificateFile);
        ValidateFile(failures, $"{root}:ClientCertificateFile", options.ClientCertificateFile);
        ValidateFile(failures, $"{root}:ClientKeyFile", options.ClientKeyFile);
        if (!string.IsNullOrEmpty(options.ClientKeyFile) && string.IsNullOrEmpty(options.ClientCertificateFile))
        {
            failures.Add($"{root}:ClientKeyFile is set but {root}:ClientCertificateFile is not.");
        }

        ValidateRegistration(failures, $"{root}:Registration", options.Registration);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void ValidateRegistration(List<string> failures, string prefix, ConsulRegistrationOptions registration)
    {
        if (!registration.Enabled)
        {
            return;
        }

        if (registration.ServiceName is { } name && (string.IsNullOrWhiteSpace(name) || name.Contains('/', StringComparison.Ordinal)))
        {
            failures.Add($"{prefix}:ServiceName '{name}' is not a valid service name.");
        }

        if (registration.ServiceId is { } id && (string.IsNullOrWhiteSpace(id) || id.Contains('/', StringComparison.Ordinal)))
        {
            failures.Add($"{prefix}:ServiceId '{id}' must not be empty or contain '/'.");
        }

        if (registration.Address is "0.0.0.0" or "::" or "[::]")
        {
            // Consul refuses it too (400 Invalid service address).
            failures.Add($"{prefix}:Address '{registration.Address}' is a wildcard; set the address other services call, or leave it empty for the agent's address.");
        }

        if (registration.Port is < 1 or > 65535)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{prefix}:Port must be between 1 and 65535, was {registration.Port}."));
        }

        if (registration.Scheme is { } scheme && scheme != Uri.UriSchemeHttp && scheme != Uri.UriSchemeHttps)
        {
            failures.Add($"{prefix}:Scheme '{scheme}' must be 'http' or 'https'.");
        }

        if (registration.Weight is < 1 or > 65535)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{prefix}:Weight must be between 1 and 65535, was {registration.Weight}."));
        }

        if (registration.WarningWeight is < 0 or > 65535)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{prefix}:WarningWeight must be between 0 and 65535, was {registration.WarningWeight}."));
        }

        if (registration.HealthCheckPath is { } path && (path.Length == 0 || path.Contains("://", StringComparison.Ordinal)))
        {
            failures.Add($"{prefix}:HealthCheckPath '{path}' must be a path such as '/health'.");
        }

        MeshOptionsValidator.ValidateRange(failures, $"{prefix}:Ttl", registration.Ttl, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));
        MeshOptionsValidator.ValidateRange(failures, $"{prefix}:CheckInterval", registration.CheckInterval, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));
        MeshOptionsValidator.ValidateRange(failures, $"{prefix}:CheckTimeout", registration.CheckTimeout, TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(1));
        if (registration.DeregisterCriticalServiceAfter is { } after)
        {
            MeshOptionsValidator.ValidateRange(failures, $"{prefix}:DeregisterCriticalServiceAfter", after, TimeSpan.FromSeconds(1), TimeSpan.FromDays(365));
        }
    }

    private static void ValidateFile(List<string> failures, string key, string? file)
    {
        if (!string.IsNullOrEmpty(file) && !File.Exists(file))
        {
            failures.Add($"{key}: the file '{file}' does not exist.");
        }
    }
}

/// <summary>The configuration path the Consul options are bound from (<c>Mesh:Consul</c>), for error messages.</summary>
internal sealed class ConsulConfigurationPath(string path)
{
    public string Path { get; } = path;
}
