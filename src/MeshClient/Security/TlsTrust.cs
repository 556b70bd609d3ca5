using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MeshClient.Security;

/// <summary>
/// What one TLS client trusts and presents: the CA certificates a server certificate must chain to (or the system
/// store), the name it must carry, and the client certificate. Shared by the Consul client and the mesh's
/// service-to-service TLS. Immutable; loaded off the hot path (at start-up, on a reload, when the mesh's files
/// change on disk), used once per connection.
/// </summary>
internal sealed class TlsTrust
{
    // id-kp-serverAuth: a certificate issued only for client authentication must not be accepted from a server.
    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1", "Server Authentication");

    /// <summary>Creates a trust from certificates already loaded (see <see cref="ParseAuthorities"/> and <see cref="ParseClientCertificate"/>).</summary>
    public TlsTrust(X509Certificate2Collection? authorities, bool trustSystem, string? serverName, X509Certificate2? clientCertificate)
    {
        Authorities = authorities;
        TrustSystem = trustSystem || authorities is null;
        ServerName = serverName;
        ClientCertificate = clientCertificate;
    }

    /// <summary>Gets a trust that refuses every server (a configuration whose files could not be read fails closed).</summary>
    public static TlsTrust RejectAll { get; } = new([], trustSystem: false, serverName: null, clientCertificate: null);

    /// <summary>Gets the CA certificates trusted as roots, or <see langword="null"/> for the system store only.</summary>
    public X509Certificate2Collection? Authorities { get; }

    /// <summary>Gets a value indicating whether a certificate the system store accepts is trusted.</summary>
    public bool TrustSystem { get; }

    /// <summary>Gets the DNS name the server certificate must carry instead of the connection's host, if any.</summary>
    public string? ServerName { get; }

    /// <summary>Gets the client certificate (with its private key) to present, if any.</summary>
    public X509Certificate2? ClientCertificate { get; }

    /// <summary>Reads the PEM files; throws <see cref="CryptographicException"/> or <see cref="IOException"/> when one cannot be read.</summary>
    public static TlsTrust Load(string? caCertificateFile, bool trustSystem, string? serverName, string? clientCertificateFile, string? clientKeyFile)
    {
        var authorities = string.IsNullOrEmpty(caCertificateFile) ? null : ParseAuthorities(File.ReadAllText(caCertificateFile), caCertificateFile);
        return new TlsTrust(authorities, trustSystem, string.IsNullOrEmpty(serverName) ? null : serverName, LoadClientCertificate(clientCertificateFile, clientKeyFile));
    }

    /// <summary>Loads a PEM certificate and its key (from <paramref name="keyFile"/>, or from the certificate file when null).</summary>
    public static X509Certificate2? LoadClientCertificate(string? certificateFile, string? keyFile) =>
        string.IsNullOrEmpty(certificateFile)
            ? null
            : ParseClientCertificate(File.ReadAllText(certificateFile), string.IsNullOrEmpty(keyFile) ? null : File.ReadAllText(keyFile), certificateFile);

    /// <summary>
    /// Parses a PEM CA bundle; throws <see cref="CryptographicException"/> when it holds no certificate or is cut
    /// short (a file caught half-written must not silently trust only its first certificates).
    /// </summary>
    public static X509Certificate2Collection ParseAuthorities(string pem, string file)
    {
        EnsureComplete(pem, file);
        X509Certificate2Collection authorities = [];
        authorities.ImportFromPem(pem);
        if (authorities.Count == 0)
        {
            throw new CryptographicException($"The file '{file}' holds no PEM certificate.");
        }

        if (authorities.Count != Count(pem, "-----BEGIN CERTIFICATE-----"))
        {
            throw new CryptographicException($"The file '{file}' holds a PEM certificate that cannot be read.");
        }

        return authorities;
    }

    /// <summary>
    /// Parses a PEM certificate and its private key (from <paramref name="keyPem"/>, or from the certificate's text
    /// when null); throws <see cref="CryptographicException"/> (or <see cref="ArgumentException"/>) when either is
    /// unreadable or cut short, or when the key is not the certificate's.
    /// </summary>
    public static X509Certificate2 ParseClientCertificate(string certificatePem, string? keyPem, string file)
    {
        EnsureComplete(certificatePem, file);
        if (keyPem is not null)
        {
            EnsureComplete(keyPem, file);
        }

        // CreateFromPem refuses a key whose public half is not the certificate's.
        using var pem = X509Certificate2.CreateFromPem(certificatePem, keyPem ?? certificatePem);
        if (!pem.HasPrivateKey)
        {
            throw new CryptographicException($"The certificate in '{file}' has no private key.");
        }

        // A PEM-loaded key is ephemeral; SslStream on Windows needs a persisted one, so round-trip through PKCS#12.
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), password: null);
    }

    /// <summary>
    /// Every PEM block that begins ends, the last end marker included (a truncated write leaves one open or cut);
    /// text around the blocks is allowed, and text with no PEM at all is left to the parser's message.
    /// </summary>
    private static void EnsureComplete(string pem, string file)
    {
        const string End = "-----END ";
        var begins = Count(pem, "-----BEGIN ");
        var last = pem.LastIndexOf(End, StringComparison.Ordinal);
        if (begins > 0 && (begins != Count(pem, End) || pem.IndexOf("-----", last + End.Length, StringComparison.Ordinal) < 0))
        {
            throw new CryptographicException($"The file '{file}' is not complete PEM (cut short, or being written).");
        }
    }

    private static int Count(string text, string value)
    {
        var count = 0;
        for (var i = text.IndexOf(value, StringComparison.Ordinal); i >= 0; i = text.IndexOf(value, i + value.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    /// <summary>
    /// Decides whether the server certificate is trusted: it must be there, carry the expected name (the connection's
    /// host as checked by <see cref="SslStream"/>, or <see cref="ServerName"/>), be valid now, be usable for server
    /// authentication, and chain to one of <see cref="Authorities"/> (or, when trusted, to the system store). A
    /// certificate is never accepted only because it chains to a certificate in the CA file: the name, the dates and
    /// the key usage are checked too, and a certificate in the file that is not a CA cannot issue one.
    /// </summary>
    public bool ValidateServer(X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors)
    {
        if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
        {
            return false;
        }

        var leaf = certificate as X509Certificate2;
        using var owned = leaf is null ? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()) : null;
        leaf ??= owned!;

        var nameMatches = ServerName is null
            ? (errors & SslPolicyErrors.RemoteCertificateNameMismatch) == 0
            : leaf.MatchesHostname(ServerName, allowWildcards: true, allowCommonName: false);
        if (!nameMatches)
        {
            return false;
        }

        // SslStream built the chain against the system store with the server-authentication policy.
        if (TrustSystem && (errors & SslPolicyErrors.RemoteCertificateChainErrors) == 0)
        {
            return true;
        }

        return Authorities is { Count: > 0 } authorities && ChainsTo(leaf, presented, authorities);
    }

    private static bool ChainsTo(X509Certificate2 leaf, X509Chain? presented, X509Certificate2Collection authorities)
    {
        using var chain = new X509Chain();
        var policy = chain.ChainPolicy;
        policy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        policy.CustomTrustStore.AddRange(authorities);
        policy.ApplicationPolicy.Add(ServerAuthentication);

        // A private mesh CA publishes no revocation lists; short-lived certificates are the answer (as in Istio/Linkerd).
        policy.RevocationMode = X509RevocationMode.NoCheck;
        if (presented is not null)
        {
            // Intermediates the server sent; the trust anchors stay those of the file.
            foreach (var element in presented.ChainElements)
            {
                policy.ExtraStore.Add(element.Certificate);
            }
        }

        if (!chain.Build(leaf))
        {
            return false;
        }

        // Belt and braces over the platform's chain engine: every issuer, the trust anchor from the file included,
        // must be a CA. A leaf certificate dropped into the CA file pins itself; it cannot vouch for others.
        var elements = chain.ChainElements;
        for (var i = 1; i < elements.Count; i++)
        {
            if (elements[i].Certificate.Extensions[BasicConstraintsOid] is not X509BasicConstraintsExtension { CertificateAuthority: true })
            {
                return false;
            }
        }

        return true;
    }

    private const string BasicConstraintsOid = "2.5.29.19";
}
