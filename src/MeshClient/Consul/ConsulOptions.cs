namespace MeshClient.Consul;

/// <summary>
/// Options of the Consul discovery provider and of self-registration, bound from <c>Mesh:Consul</c> by
/// <c>AddConsul()</c> (reloadable, except the TLS files which are read when the Consul client is created).
/// Invalid values fail at start-up with an <see cref="Microsoft.Extensions.Options.OptionsValidationException"/>
/// that names the configuration key.
/// </summary>
public sealed class ConsulOptions
{
    /// <summary>The default <see cref="Address"/>: the local agent.</summary>
    public const string DefaultAddress = "http://127.0.0.1:8500";

    /// <summary>
    /// Gets or sets the address of the Consul agent: an absolute <c>http</c> or <c>https</c> URI, optionally with a
    /// path prefix when Consul sits behind a reverse proxy. Default: <c>http://127.0.0.1:8500</c>.
    /// </summary>
    public string Address { get; set; } = DefaultAddress;

    /// <summary>
    /// Gets or sets the ACL token, sent as the <c>X-Consul-Token</c> header. It never appears in a log line, an
    /// exception message, a span or a metric. Default: none (the agent's default token applies).
    /// </summary>
    public string? Token { get; set; }

    /// <summary>Gets or sets the datacenter to query (<c>?dc=</c>). Default: the agent's datacenter.</summary>
    public string? Datacenter { get; set; }

    /// <summary>
    /// Gets the tags an instance must all carry to be discovered (<c>?tag=</c>, case-insensitive, as Consul matches
    /// them). Default: none.
    /// </summary>
    public IList<string> Tags { get; } = new List<string>();

    /// <summary>
    /// Gets or sets a value indicating whether only instances whose every check passes are discovered. When
    /// <see langword="false"/>, instances in <c>warning</c> are discovered too, with their <c>Weights.Warning</c>
    /// (an instance whose chosen weight is 0 is left out). Critical and maintenance instances are never discovered.
    /// Default: <see langword="true"/>.
    /// </summary>
    public bool OnlyPassing { get; set; } = true;

    /// <summary>Gets or sets the namespace (Consul Enterprise, <c>?ns=</c>); sent only when set.</summary>
    public string? Namespace { get; set; }

    /// <summary>Gets or sets the admin partition (Consul Enterprise, <c>?partition=</c>); sent only when set.</summary>
    public string? Partition { get; set; }

    /// <summary>
    /// Gets or sets the scheme used to call discovered instances: <c>http</c> (default) or <c>https</c>. An instance
    /// overrides it with the <c>Service.Meta</c> entry named by <see cref="SchemeMetaKey"/>.
    /// </summary>
    public string Scheme { get; set; } = "http";

    /// <summary>
    /// Gets or sets the <c>Service.Meta</c> key whose value (<c>http</c> or <c>https</c>) sets the scheme of one
    /// instance. Default: <c>scheme</c>. Empty disables the override.
    /// </summary>
    public string? SchemeMetaKey { get; set; } = "scheme";

    /// <summary>
    /// Gets or sets the <c>Service.Meta</c> key that holds the zone of an instance. The zone is read from the instance's
    /// <c>Service.Meta</c> under this key, else its <c>Service.Locality.Zone</c> (Consul 1.17+), else its node's
    /// <c>Node.Meta</c> under this key, else <c>Node.Locality.Zone</c>. Default: <c>zone</c>. Empty disables zones.
    /// </summary>
    public string? ZoneMetaKey { get; set; } = "zone";

    /// <summary>
    /// Gets or sets the longest time a blocking query waits for a change (<c>?wait=</c>), from 1 second to 10
    /// minutes (Consul's cap). Consul adds up to <c>wait / 16</c> of jitter; the client allows for it. Default: 5 minutes.
    /// </summary>
    public TimeSpan Wait { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Gets or sets the timeout of the requests that do not block: the first query of a service and the
    /// registration calls. Default: 10 seconds.
    /// </summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Gets or sets the first delay before retrying after a failure; the delay doubles on each consecutive
    /// failure, up to <see cref="RetryMaxDelay"/>, and is jittered (between half and all of it). Default: 1 second.
    /// </summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Gets or sets the longest delay between retries. Default: 30 seconds.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Gets or sets how long the watch of a service that nothing uses any more stays open before it ends.
    /// Default: 2 minutes.
    /// </summary>
    public TimeSpan WatchIdleTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Gets or sets the largest response body accepted from Consul, in bytes (after decompression). A larger answer
    /// is rejected and the last good endpoints keep serving. Default: 16 MiB.
    /// </summary>
    public int MaxResponseBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>
    /// Gets or sets a PEM file holding the CA certificate(s) that Consul's HTTPS certificate must chain to. When
    /// set, only this CA is trusted for Consul. Default: the system trust store. Read again every
    /// <c>Mesh:Tls:ReloadInterval</c> with the client certificate files: new connections use rotated files.
    /// </summary>
    public string? CaCertificateFile { get; set; }

    /// <summary>Gets or sets a PEM file holding the client certificate presented to Consul (with <see cref="ClientKeyFile"/>).</summary>
    public string? ClientCertificateFile { get; set; }

    /// <summary>Gets or sets a PEM file holding the private key of <see cref="ClientCertificateFile"/>.</summary>
    public string? ClientKeyFile { get; set; }

    /// <summary>Gets the self-registration of the running service (<c>Mesh:Consul:Registration</c>), off by default.</summary>
    public ConsulRegistrationOptions Registration { get; } = new();

    /// <summary>
    /// Describes the options for diagnostics. The ACL token is shown as <c>[redacted]</c> (or <c>(none)</c>), never
    /// its value; the address is shown without user info or a query.
    /// </summary>
    /// <returns>A one-line description such as <c>ConsulOptions { Address = http://127.0.0.1:8500, Token = [redacted], … }</c>.</returns>
    public override string ToString() => string.Create(
        System.Globalization.CultureInfo.InvariantCulture,
        $"ConsulOptions {{ Address = {ConsulClient.Describe(Address)}, Token = {(Token is null ? "(none)" : "[redacted]")}, Datacenter = {Datacenter}, Tags = [{string.Join(", ", Tags)}], OnlyPassing = {OnlyPassing}, Namespace = {Namespace}, Partition = {Partition}, Scheme = {Scheme}, Wait = {Wait}, CaCertificateFile = {CaCertificateFile}, ClientCertificateFile = {ClientCertificateFile}, Registration = {(Registration.Enabled ? "enabled" : "disabled")} }}");

    /// <summary>Gets what the configuration binder could not convert, each message naming its key; reported by validation.</summary>
    internal List<string> BindingErrors { get; } = [];
}
