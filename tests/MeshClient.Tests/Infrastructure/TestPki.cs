using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MeshClient.Tests.Infrastructure;

/// <summary>
/// A throw-away PKI generated in the test with <see cref="CertificateRequest"/>: a CA, certificates it issues (for
/// 127.0.0.1 and localhost unless told otherwise), and PEM files of any of them in a temporary directory.
/// </summary>
public sealed class TestPki : IDisposable
{
    public const string ServerAuth = "1.3.6.1.5.5.7.3.1";
    public const string ClientAuth = "1.3.6.1.5.5.7.3.2";

    private readonly string _directory = Directory.CreateTempSubdirectory("meshclient-pki-").FullName;
    private readonly List<X509Certificate2> _owned = [];
    private int _files;

    private TestPki(string name)
    {
        Authority = CreateAuthority(name);
        AuthorityFile = WritePem(Authority, key: false);
    }

    /// <summary>Gets the CA (with its key).</summary>
    public X509Certificate2 Authority { get; }

    /// <summary>Gets a PEM file holding the CA certificate only.</summary>
    public string AuthorityFile { get; }

    public static TestPki Create(string name = "MeshClient Test CA") => new(name);

    /// <summary>A server certificate for 127.0.0.1 and localhost (or <paramref name="names"/>), valid now.</summary>
    public X509Certificate2 Server(params string[] names) => Issue("CN=server", ServerAuth, names.Length == 0 ? ["127.0.0.1", "localhost"] : names);

    /// <summary>A client certificate (client authentication only).</summary>
    public X509Certificate2 Client(string subject = "CN=meshclient") => Issue(subject, ClientAuth, ["localhost"]);

    /// <summary>Issues a certificate signed by this CA (or by <paramref name="issuer"/>), with its private key.</summary>
    public X509Certificate2 Issue(string subject, string usage, string[] names, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null, X509Certificate2? issuer = null, bool isAuthority = false)
    {
        var now = DateTimeOffset.UtcNow;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        AddNames(request, names);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(isAuthority, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usage)], false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var signer = issuer ?? Authority;
        var from = notBefore ?? now.AddHours(-1);
        var to = notAfter ?? now.AddHours(12);
        to = to < signer.NotAfter ? to : signer.NotAfter;

        // CertificateRequest refuses an issuer that is not a CA; a raw signature generator does not (for tests that
        // need such a certificate).
        using var signerKey = signer.GetECDsaPrivateKey()!;
        using var issued = request.Create(signer.SubjectName, X509SignatureGenerator.CreateForECDsa(signerKey), from, to, RandomNumberGenerator.GetBytes(8));
        return Own(issued.CopyWithPrivateKey(key));
    }

    /// <summary>A self-signed server certificate for 127.0.0.1 and localhost that no CA vouches for.</summary>
    public X509Certificate2 SelfSigned()
    {
        var now = DateTimeOffset.UtcNow;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=untrusted", key, HashAlgorithmName.SHA256);
        AddNames(request, ["127.0.0.1", "localhost"]);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(ServerAuth)], false));
        return Own(request.CreateSelfSigned(now.AddHours(-1), now.AddHours(12)));
    }

    /// <summary>Writes a certificate (and, when asked, its private key in a second file) as PEM.</summary>
    public string WritePem(X509Certificate2 certificate, bool key, out string? keyFile)
    {
        var file = Path.Combine(_directory, $"cert{Interlocked.Increment(ref _files)}.pem");
        File.WriteAllText(file, certificate.ExportCertificatePem());
        keyFile = null;
        if (key)
        {
            keyFile = Path.ChangeExtension(file, ".key");
            using var privateKey = certificate.GetECDsaPrivateKey()!;
            File.WriteAllText(keyFile, privateKey.ExportPkcs8PrivateKeyPem());
        }

        return file;
    }

    public string WritePem(X509Certificate2 certificate, bool key) => WritePem(certificate, key, out _);

    /// <summary>Writes several certificates into one PEM file (a CA bundle).</summary>
    public string WriteBundle(params X509Certificate2[] certificates)
    {
        var file = Path.Combine(_directory, $"bundle{Interlocked.Increment(ref _files)}.pem");
        File.WriteAllText(file, string.Concat(certificates.Select(c => c.ExportCertificatePem() + "\n")));
        return file;
    }

    /// <summary>Kestrel on Linux wants a certificate whose key it can use: round-trip through PKCS#12.</summary>
    public static X509Certificate2 ForKestrel(X509Certificate2 certificate) =>
        X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);

    private static void AddNames(CertificateRequest request, string[] names)
    {
        var builder = new SubjectAlternativeNameBuilder();
        foreach (var name in names)
        {
            if (IPAddress.TryParse(name, out var address))
            {
                builder.AddIpAddress(address);
            }
            else
            {
                builder.AddDnsName(name);
            }
        }

        request.CertificateExtensions.Add(builder.Build());
    }

    private X509Certificate2 CreateAuthority(string name)
    {
        var now = DateTimeOffset.UtcNow;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return Own(request.CreateSelfSigned(now.AddDays(-30), now.AddDays(30)));
    }

    private X509Certificate2 Own(X509Certificate2 certificate)
    {
        _owned.Add(certificate);
        return certificate;
    }

    public void Dispose()
    {
        foreach (var certificate in _owned)
        {
            certificate.Dispose();
        }

        Directory.Delete(_directory, recursive: true);
    }
}
