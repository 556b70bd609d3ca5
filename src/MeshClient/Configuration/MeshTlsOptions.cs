namespace MeshClient.Configuration;

/// <summary>
/// TLS of the calls to mesh endpoints (service-to-service mTLS), bound from <c>Mesh:Tls</c> for every service and
/// from <c>Mesh:Services:{name}:Tls</c> for one service (a value left unset there takes the global one). It applies
/// only to connections the mesh opens to a discovered endpoint over <c>https</c>; connections to hosts outside the
/// mesh keep the platform's validation and never present the client certificate. Invalid values (a missing file,
/// a key without a certificate) fail at start-up with an
/// <see cref="Microsoft.Extensions.Options.OptionsValidationException"/> naming the key. The files are read when
/// the options are loaded or reloaded, and again every <see cref="ReloadInterval"/>: when their contents changed
/// (a rotation by cert-manager, Vault agent, a Kubernetes secret volume's <c>..data</c> swap), connections opened
/// from then on use the new certificates and trust bundle, with no restart and no configuration reload; a
/// connection already open keeps the certificates it was opened with. A rotation caught half-written (a certificate
/// without its key, a truncated file) is not applied: the previous certificates keep serving, a warning is logged,
/// and the files are read again at the next interval.
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

    /// <summary>
    /// Gets or sets how often the certificate files of every service (<see cref="CaCertificateFile"/>,
    /// <see cref="ClientCertificateFile"/>, <see cref="ClientKeyFile"/>) are read again to pick up a rotation, from
    /// 1 second to 1 day. Global only (<c>Mesh:Tls:ReloadInterval</c>): one timer polls the files of every service,
    /// and setting it under <c>Mesh:Services:{name}:Tls</c> is a validation error. The files are polled only while
    /// some TLS file is configured. Default: 1 minute when unset.
    /// </summary>
    public TimeSpan? ReloadInterval { get; set; }

    /// <summary>Gets the polling interval used when <see cref="ReloadInterval"/> is unset: 1 minute.</summary>
    public static TimeSpan DefaultReloadInterval { get; } = TimeSpan.FromMinutes(1);

    /// <summary>Gets the shortest <see cref="ReloadInterval"/> accepted: 1 second.</summary>
    public static TimeSpan MinReloadInterval { get; } = TimeSpan.FromSeconds(1);

    /// <summary>Gets the longest <see cref="ReloadInterval"/> accepted: 1 day.</summary>
    public static TimeSpan MaxReloadInterval { get; } = TimeSpan.FromDays(1);
}
