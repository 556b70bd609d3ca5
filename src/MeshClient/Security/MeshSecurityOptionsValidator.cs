using System.Globalization;
using System.Security.Cryptography;
using MeshClient.Configuration;
using Microsoft.Extensions.Options;

namespace MeshClient.Security;

/// <summary>
/// Validates the security settings of <see cref="MeshOptions"/> (<c>Mesh:Tls</c>, <c>Mesh:Services:{name}:Tls</c>,
/// <c>Mesh:Tls:ReloadInterval</c>, <c>Mesh:AllowedNetworks</c>, <c>Mesh:AllowedHostNames</c>) at start-up and on every reload; every message names
/// the key. The certificate files are read here, so a file that is not PEM fails at start-up rather than at the
/// first call.
/// </summary>
internal sealed class MeshSecurityOptionsValidator(MeshConfigurationPath path) : IValidateOptions<MeshOptions>
{
    public ValidateOptionsResult Validate(string? name, MeshOptions options)
    {
        if (name != Options.DefaultName)
        {
            return ValidateOptionsResult.Skip;
        }

        var failures = new List<string>();
        var root = path.Path;
        for (var i = 0; i < options.AllowedNetworks.Count; i++)
        {
            var value = options.AllowedNetworks[i];
            if (!EndpointAddressFilter.TryParseNetwork(value, out _))
            {
                failures.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{root}:AllowedNetworks:{i} '{value}' is not a network: use CIDR notation with no bit set past the prefix, such as '10.0.0.0/8' or 'fd00::/8', or a single address."));
            }
        }

        for (var i = 0; i < options.AllowedHostNames.Count; i++)
        {
            var value = options.AllowedHostNames[i];
            var bare = value?.StartsWith("*.", StringComparison.Ordinal) == true ? value[2..] : value;
            if (string.IsNullOrWhiteSpace(bare) || Uri.CheckHostName(bare.TrimEnd('.')) != UriHostNameType.Dns)
            {
                failures.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{root}:AllowedHostNames:{i} '{value}' is not a host name: use a name such as 'catalog.internal' or '*.svc.cluster.local' (no scheme, port or address)."));
            }
        }

        if (options.AllowedHostNames.Count > 0 && options.AllowedNetworks.Count == 0)
        {
            failures.Add($"{root}:AllowedHostNames is set but {root}:AllowedNetworks is empty, so every endpoint is allowed anyway; set {root}:AllowedNetworks (for example '0.0.0.0/0' and '::/0' to allow every address and restrict only names).");
        }

        ValidateTls(failures, $"{root}:Tls", options.Tls);
        if (options.Tls.ReloadInterval is { } interval)
        {
            MeshOptionsValidator.ValidateRange(failures, $"{root}:Tls:ReloadInterval", interval, MeshTlsOptions.MinReloadInterval, MeshTlsOptions.MaxReloadInterval);
        }

        foreach (var (serviceName, service) in options.Services)
        {
            if (service is not null)
            {
                ValidateTls(failures, $"{root}:Services:{serviceName}:Tls", service.Tls);

                // One timer polls the files of every service; a per-service value would be silently ignored.
                if (service.Tls.ReloadInterval is not null)
                {
                    failures.Add($"{root}:Services:{serviceName}:Tls:ReloadInterval cannot be set per service: set {root}:Tls:ReloadInterval, which applies to the files of every service.");
                }
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void ValidateTls(List<string> failures, string prefix, MeshTlsOptions tls)
    {
        if (!string.IsNullOrEmpty(tls.CaCertificateFile))
        {
            if (!File.Exists(tls.CaCertificateFile))
            {
                failures.Add($"{prefix}:CaCertificateFile: the file '{tls.CaCertificateFile}' does not exist.");
            }
            else
            {
                Try(failures, $"{prefix}:CaCertificateFile", () => TlsTrust.Load(tls.CaCertificateFile, false, null, null, null));
            }
        }

        if (!string.IsNullOrEmpty(tls.ClientKeyFile) && string.IsNullOrEmpty(tls.ClientCertificateFile))
        {
            failures.Add($"{prefix}:ClientKeyFile is set but {prefix}:ClientCertificateFile is not.");
        }

        if (!string.IsNullOrEmpty(tls.ClientCertificateFile))
        {
            var missing = false;
            foreach (var (key, file) in new[] { ("ClientCertificateFile", tls.ClientCertificateFile), ("ClientKeyFile", tls.ClientKeyFile) })
            {
                if (!string.IsNullOrEmpty(file) && !File.Exists(file))
                {
                    failures.Add($"{prefix}:{key}: the file '{file}' does not exist.");
                    missing = true;
                }
            }

            if (!missing)
            {
                Try(failures, $"{prefix}:ClientCertificateFile", () => TlsTrust.LoadClientCertificate(tls.ClientCertificateFile, tls.ClientKeyFile)?.Dispose());
            }
        }

        if (tls.ServerName is { } serverName && Uri.CheckHostName(serverName) != UriHostNameType.Dns)
        {
            failures.Add($"{prefix}:ServerName '{serverName}' must be a DNS name such as 'catalog.mesh.internal'.");
        }
    }

    private static void Try(List<string> failures, string key, Action load)
    {
        try
        {
            load();
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            failures.Add($"{key}: the file cannot be used ({ex.Message}); it must hold PEM certificate(s){(key.EndsWith("ClientCertificateFile", StringComparison.Ordinal) ? " and an unencrypted PEM private key (in ClientKeyFile or the same file)" : string.Empty)}.");
        }
    }
}
