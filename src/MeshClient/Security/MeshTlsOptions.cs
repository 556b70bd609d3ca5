namespace MeshClient.Security;

/// <summary>
/// TLS of the calls to mesh endpoints (service-to-service mTLS), bound from <c>Mesh:Tls</c> for every service and
/// from <c>Mesh:Services:{name}:Tls</c> for one service (a value left unset there takes the global one). It applies
/// only to connections the mesh opens to a discovered endpoint over <c>https</c>; connections to hosts outside the
/// mesh keep the platform's validation and never present the client certificate. Invalid values (a missing file,
/// a key without a certificate) fail at start-up with an
/// <see cref="Microsoft.Extensions.Options.OptionsValidationException"/> naming the key. The files are read when
/// the options are loaded or reloaded; a connection already open keeps the certificates it was opened with.
/// </summary>
public sealed class MeshTlsOptions
{
    /// <summary>
    /// Gets or sets a PEM file holding the CA certificate(s) that the certificates of mesh endpoints must chain to
    /// (the mesh's trust bundle, as Istio's or Linkerd's root). When set, only these CAs are trusted for mesh
    /// endpoints unless <see cref="TrustSystemCertificates"/> is <see langword="true"/>. Default: none (the system
    /// trust store).
    /// </summary>
    public string? CaCertificateFile { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether a certificate that the system trust store accepts is trusted as well
    /// as one that chains to <see cref="CaCertificateFile"/>. Without a CA file the system store is always used.
    /// Default: <see langword="false"/> when unset.
    /// </summary>
    public bool? TrustSystemCertificates { get; set; }

    /// <summary>
    /// Gets or sets a PEM file holding the client certificate (the workload's identity) presented to mesh endpoints
    /// that ask for one; its private key is in <see cref="ClientKeyFile"/>, or in the same file. Default: none.
    /// </summary>
    public string? ClientCertificateFile { get; set; }

    /// <summary>Gets or sets a PEM file holding the private key of <see cref="ClientCertificateFile"/> (PKCS#8 or PKCS#1, unencrypted).</summary>
    public string? ClientKeyFile { get; set; }

    /// <summary>
    /// Gets or sets the name that the certificate of every endpoint of the service must carry as a DNS subject
    /// alternative name (Linkerd's identity, Istio's <c>subjectAltNames</c>), checked instead of the host the
    /// connection is made to; useful when endpoints are IP addresses. <c>*.</c> wildcards in the certificate match.
    /// Default: none (the endpoint's host name, or its <c>HostName</c>, must match the certificate).
    /// </summary>
    public string? ServerName { get; set; }
}
