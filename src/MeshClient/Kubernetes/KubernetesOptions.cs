namespace MeshClient.Kubernetes;

/// <summary>
/// Options of the Kubernetes discovery provider, bound from <c>Mesh:Kubernetes</c> by <c>AddKubernetes()</c>
/// (reloadable, except the credentials, which are read when the provider first calls the API server).
/// Invalid values fail at start-up with an <see cref="Microsoft.Extensions.Options.OptionsValidationException"/>
/// that names the configuration key.
/// </summary>
public sealed class KubernetesOptions
{
    /// <summary>The default <see cref="ClusterDomain"/>.</summary>
    public const string DefaultClusterDomain = "cluster.local";

    /// <summary>
    /// Gets or sets the namespace of single-label names (<c>http://catalog</c>). Default: the pod's own namespace, read
    /// from the service-account namespace file, else the kubeconfig context's namespace, else <c>default</c>.
    /// </summary>
    public string? Namespace { get; set; }

    /// <summary>
    /// Gets or sets the cluster domain, so that <c>catalog.shop.svc.cluster.local</c> resolves like
    /// <c>catalog.shop</c>. Default: <c>cluster.local</c>.
    /// </summary>
    public string ClusterDomain { get; set; } = DefaultClusterDomain;

    /// <summary>
    /// Gets or sets a kubeconfig file to read the API server address and credentials from (token or client
    /// certificate). Default: none: in a pod, the in-cluster service account (token, CA and
    /// <c>KUBERNETES_SERVICE_HOST</c>/<c>KUBERNETES_SERVICE_PORT</c>); outside one, the file named by
    /// <c>KUBECONFIG</c>, else <c>~/.kube/config</c>.
    /// </summary>
    public string? KubeConfigPath { get; set; }

    /// <summary>Gets or sets the kubeconfig context to use. Default: the file's <c>current-context</c>.</summary>
    public string? Context { get; set; }

    /// <summary>Gets the per-service settings (<c>Mesh:Kubernetes:Services:{name}</c>), keyed by service name.</summary>
    public IDictionary<string, KubernetesServiceOptions> Services { get; } =
        new Dictionary<string, KubernetesServiceOptions>(StringComparer.OrdinalIgnoreCase);

    /// <summary>Gets or sets the timeout of a list request and of connecting a watch. Default: 10 seconds.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Gets or sets how long one watch request lasts (its <c>timeoutSeconds</c>) before it is renewed from the last
    /// resourceVersion, from 10 seconds to 1 hour. Default: 5 minutes.
    /// </summary>
    public TimeSpan WatchTimeout { get; set; } = TimeSpan.FromMinutes(5);

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
    /// Gets or sets the largest list response or watch event accepted, in bytes. A larger one is rejected and
    /// the last good endpoints keep serving. Default: 16 MiB.
    /// </summary>
    public int MaxResponseBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>The service-account directory of an in-cluster pod (tests point it elsewhere).</summary>
    internal string ServiceAccountPath { get; set; } = "/var/run/secrets/kubernetes.io/serviceaccount";

    /// <summary>Reads an environment variable (tests replace it).</summary>
    internal Func<string, string?> GetEnvironmentVariable { get; set; } = Environment.GetEnvironmentVariable;

    /// <summary>
    /// Describes the options for diagnostics; no credential is ever part of them (tokens and keys live in the
    /// service-account files or the kubeconfig).
    /// </summary>
    /// <returns>A one-line description such as <c>KubernetesOptions { Namespace = shop, … }</c>.</returns>
    public override string ToString() => string.Create(
        System.Globalization.CultureInfo.InvariantCulture,
        $"KubernetesOptions {{ Namespace = {Namespace ?? "(pod namespace)"}, ClusterDomain = {ClusterDomain}, KubeConfigPath = {KubeConfigPath ?? "(in-cluster)"}, Context = {Context}, Services = [{string.Join(", ", Services.Keys)}], WatchTimeout = {WatchTimeout}, WatchIdleTimeout = {WatchIdleTimeout} }}");

    /// <summary>Gets what the configuration binder could not convert, each message naming its key; reported by validation.</summary>
    internal List<string> BindingErrors { get; } = [];
}

/// <summary>Settings of one Kubernetes service, bound from <c>Mesh:Kubernetes:Services:{name}</c>.</summary>
public sealed class KubernetesServiceOptions
{
    /// <summary>
    /// Gets or sets the name of the EndpointSlice port to call. Default: the port named <c>http</c>, else
    /// <c>https</c>, else <c>grpc</c>, else the slice's only port.
    /// </summary>
    public string? PortName { get; set; }
}
