using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.Extensions.Logging;

namespace MeshClient.Security;

/// <summary>The PEM files of one TLS setting: the CA bundle, the client certificate and its key (each optional).</summary>
internal sealed record TlsFileSet(string? CaCertificateFile, string? ClientCertificateFile, string? ClientKeyFile);

/// <summary>
/// What one <see cref="TlsFileSet"/> holds when parsed: the CA certificates (or <see langword="null"/> for none
/// configured) and the client certificate. <see cref="Unreadable"/> when the files have never been readable.
/// </summary>
internal sealed class TlsMaterial(X509Certificate2Collection? authorities, X509Certificate2? clientCertificate)
{
    /// <summary>Gets the material of files never read successfully: connections that need it are refused.</summary>
    public static TlsMaterial Unreadable { get; } = new([], null);

    public X509Certificate2Collection? Authorities { get; } = authorities;

    public X509Certificate2? ClientCertificate { get; } = clientCertificate;
}

/// <summary>
/// Watches the files of one <see cref="TlsFileSet"/> by reading them again on every <see cref="Refresh"/> (one
/// timer tick of <see cref="MeshTls"/>) and switching <see cref="Current"/> when their contents changed and parse.
/// </summary>
/// <remarks>
/// Contents are compared rather than a fingerprint or FileSystemWatcher events: a few kilobytes read per interval cost
/// nothing, and they are right where metadata is not (a Kubernetes <c>..data</c> symlink swap keeps every path and
/// may keep sizes, mtimes are coarse on some file systems, inotify misses writes through symlinks and in some
/// container mounts). Replaced certificates are not disposed: a handshake that captured them may still be running
/// and an open connection keeps using them, so the finalizer frees them once nothing does (one set per rotation).
/// </remarks>
internal sealed partial class TlsFiles
{
    private readonly Lock _gate = new();
    private readonly ILogger _logger;
    private string? _accepted;
    private string? _rejected;
    private volatile TlsMaterial _current;

    /// <summary>Reads the files now; when they cannot be used, <see cref="Current"/> refuses every connection until they can.</summary>
    public TlsFiles(TlsFileSet files, string key, ILogger logger)
    {
        Files = files;
        Key = key;
        _logger = logger;
        lock (_gate)
        {
            string?[]? contents = null;
            try
            {
                contents = Read();
                _current = Parse(contents);
                _accepted = Digest(contents);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Validated at start-up; files that became unusable since fail closed until a poll finds them good.
                _current = TlsMaterial.Unreadable;
                _rejected = Signature(contents, ex);
                Log.TlsFilesUnreadable(logger, key, ex);
            }
        }
    }

    public TlsFileSet Files { get; }

    /// <summary>Gets the configuration key the files were first configured under (for logs).</summary>
    public string Key { get; }

    /// <summary>Gets the certificates new connections use: the last contents of the files that parsed.</summary>
    public TlsMaterial Current => _current;

    /// <summary>
    /// Reads the files; when their contents differ from those in use and parse, switches to them and logs event 23;
    /// when they do not parse (a rotation caught half-written), keeps the current ones and logs event 22 once per
    /// distinct contents. Never throws (it runs on a timer).
    /// </summary>
    public void Refresh()
    {
        lock (_gate)
        {
            string? digest = null;
            TlsMaterial material;
            try
            {
                var contents = Read();
                digest = Digest(contents);
                if (digest == _accepted)
                {
                    _rejected = null;
                    return;
                }

                if (digest == _rejected)
                {
                    return; // the same unusable contents as at the last interval: already reported
                }

                try
                {
                    material = Parse(contents);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // The files may have changed while being read (a writer, or a symlink swap between the
                    // certificate and the key): if so, the newer contents decide.
                    var again = Read();
                    var settled = Digest(again);
                    if (settled == digest)
                    {
                        throw;
                    }

                    digest = settled;
                    if (settled == _accepted)
                    {
                        _rejected = null;
                        return;
                    }

                    material = Parse(again);
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                var signature = digest ?? Signature(null, ex);
                if (!string.Equals(signature, _rejected, StringComparison.Ordinal))
                {
                    _rejected = signature;
                    Log.TlsReloadRejected(_logger, Key, ex.Message, ex);
                }

                return;
            }

            _accepted = digest;
            _rejected = null;
            _current = material;
            var certificate = material.ClientCertificate;
            Log.TlsReloaded(
                _logger,
                Key,
                certificate?.Subject ?? "no client certificate",
                certificate?.Thumbprint ?? "-",
                certificate is null ? null : new DateTimeOffset(certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero),
                material.Authorities?.Count ?? 0);
        }
    }

    private string?[] Read() =>
    [
        ReadText(Files.CaCertificateFile),
        ReadText(Files.ClientCertificateFile),
        string.IsNullOrEmpty(Files.ClientCertificateFile) ? null : ReadText(Files.ClientKeyFile),
    ];

    private static string? ReadText(string? file) => string.IsNullOrEmpty(file) ? null : File.ReadAllText(file);

    private TlsMaterial Parse(string?[] contents)
    {
        var authorities = contents[0] is { } ca ? TlsTrust.ParseAuthorities(ca, Files.CaCertificateFile!) : null;
        var certificate = contents[1] is { } pem ? TlsTrust.ParseClientCertificate(pem, contents[2], Files.ClientCertificateFile!) : null;
        return new TlsMaterial(authorities, certificate);
    }

    /// <summary>A SHA-256 of the contents: what they are compared by, so that no copy of the key's text is kept.</summary>
    private static string Digest(string?[] contents)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var content in contents)
        {
            hash.AppendData(content is null ? [0] : [1]);
            hash.AppendData(Encoding.UTF8.GetBytes(content ?? string.Empty));
            hash.AppendData([0]);
        }

        return Convert.ToHexString(hash.GetHashAndReset());
    }

    /// <summary>What a rejection is remembered by: the digest of the contents that failed, or the error when they could not be read.</summary>
    private static string Signature(string?[]? contents, Exception error) =>
        contents is null ? $"{error.GetType().FullName}: {error.Message}" : Digest(contents);

    private static partial class Log
    {
        [LoggerMessage(21, LogLevel.Error, "{Key}: the certificate files cannot be read; connections to the endpoints concerned are refused until they can.", EventName = "TlsFilesUnreadable")]
        public static partial void TlsFilesUnreadable(ILogger logger, string key, Exception exception);

        [LoggerMessage(22, LogLevel.Warning, "{Key}: the certificate files changed on disk but cannot be used ({Reason}); new connections keep the previous certificates, and the files are read again at the next interval.", EventName = "TlsReloadRejected")]
        public static partial void TlsReloadRejected(ILogger logger, string key, string reason, Exception exception);

        [LoggerMessage(23, LogLevel.Information, "{Key}: reloaded the certificate files changed on disk; new connections present {Subject} (thumbprint {Thumbprint}, valid until {NotAfter:O}) and trust {Authorities} CA certificate(s) from the file; open connections keep theirs.", EventName = "TlsReloaded")]
        public static partial void TlsReloaded(ILogger logger, string key, string subject, string thumbprint, DateTimeOffset? notAfter, int authorities);
    }
}
