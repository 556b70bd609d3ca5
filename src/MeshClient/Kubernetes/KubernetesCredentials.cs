using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using k8s;
using k8s.Authentication;

namespace MeshClient.Kubernetes;

/// <summary>
/// Where the API server is and how to prove who we are: the in-cluster service account (its token file, which the
/// kubelet rotates, is read again whenever it changes), or a kubeconfig file (bearer token, token file, exec plugin
/// or client certificate). The token is held privately and only ever put into the <c>Authorization</c> header;
/// <see cref="ToString"/> and <see cref="Source"/> never show it.
/// </summary>
internal sealed class KubernetesCredentials
{
    private readonly Lock _tokenLock = new();
    private readonly string? _staticToken;
    private readonly string? _tokenFile;
    private readonly ITokenProvider? _tokenProvider;
    private string? _fileToken;
    private DateTime _fileStamp;
    private long _fileLength = -1;

    private KubernetesCredentials(
        Uri server, string source, string? defaultNamespace, X509Certificate2Collection? authorities, bool skipTlsVerify,
        string? tlsServerName, X509Certificate2? clientCertificate, string? staticToken, string? tokenFile, ITokenProvider? tokenProvider)
    {
        Server = server;
        Source = source;
        DefaultNamespace = defaultNamespace;
        Authorities = authorities;
        SkipTlsVerify = skipTlsVerify;
        TlsServerName = tlsServerName;
        ClientCertificate = clientCertificate;
        _staticToken = staticToken;
        _tokenFile = tokenFile;
        _tokenProvider = tokenProvider;
    }

    /// <summary>Gets the API server's address.</summary>
    public Uri Server { get; }

    /// <summary>Gets where the credentials come from, for messages (never a secret).</summary>
    public string Source { get; }

    /// <summary>Gets the namespace the credentials imply (the kubeconfig context's), if any.</summary>
    public string? DefaultNamespace { get; }

    public X509Certificate2Collection? Authorities { get; }

    public bool SkipTlsVerify { get; }

    public string? TlsServerName { get; }

    public X509Certificate2? ClientCertificate { get; }

    /// <summary>Gets the last token known without I/O (static or last read from the file), to mask echoes of it.</summary>
    internal string? LastToken => _staticToken ?? Volatile.Read(ref _fileToken);

    /// <summary>Gets the API server address for messages: scheme, host and port.</summary>
    public string DisplayServer => Server.GetComponents(UriComponents.SchemeAndServer, UriFormat.UriEscaped);

    public override string ToString() => $"KubernetesCredentials {{ Server = {DisplayServer}, Source = {Source} }}";

    /// <summary>
    /// Loads the credentials: <see cref="KubernetesOptions.KubeConfigPath"/> when set; else the in-cluster service
    /// account when <c>KUBERNETES_SERVICE_HOST</c> is set; else the kubeconfig named by <c>KUBECONFIG</c> or
    /// <c>~/.kube/config</c>.
    /// </summary>
    /// <exception cref="KubernetesException">Of kind <see cref="KubernetesFailureKind.Configuration"/> when none can be used.</exception>
    public static KubernetesCredentials Load(KubernetesOptions options)
    {
        if (!string.IsNullOrEmpty(options.KubeConfigPath))
        {
            return FromKubeConfig(options.KubeConfigPath, options.Context);
        }

        var host = options.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST");
        if (!string.IsNullOrEmpty(host))
        {
            return InCluster(options, host);
        }

        var path = options.GetEnvironmentVariable("KUBECONFIG")?.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".kube", "config");
        if (File.Exists(path))
        {
            return FromKubeConfig(path, options.Context);
        }

        throw new KubernetesException(
            KubernetesFailureKind.Configuration,
            "No Kubernetes credentials: not in a pod (KUBERNETES_SERVICE_HOST is not set), Mesh:Kubernetes:KubeConfigPath is not set, and there is no kubeconfig file (KUBECONFIG, ~/.kube/config).");
    }

    /// <summary>Reads the pod's namespace from the service-account directory, if there is one.</summary>
    public static string? ReadPodNamespace(KubernetesOptions options)
    {
        try
        {
            var file = Path.Combine(options.ServiceAccountPath, "namespace");
            return File.Exists(file) ? File.ReadAllText(file).Trim() is { Length: > 0 } ns ? ns : null : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static KubernetesCredentials InCluster(KubernetesOptions options, string host)
    {
        var port = options.GetEnvironmentVariable("KUBERNETES_SERVICE_PORT");
        if (string.IsNullOrEmpty(port))
        {
            port = "443";
        }

        // An IPv6 service host (a dual-stack or IPv6-only cluster) must be bracketed in a URI.
        var authority = host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('[') ? "[" + host + "]" : host;
        if (!Uri.TryCreate("https://" + authority + ":" + port, UriKind.Absolute, out var server))
        {
            throw new KubernetesException(KubernetesFailureKind.Configuration, $"KUBERNETES_SERVICE_HOST '{host}' and KUBERNETES_SERVICE_PORT '{port}' do not form an address.");
        }

        var tokenFile = Path.Combine(options.ServiceAccountPath, "token");
        var caFile = Path.Combine(options.ServiceAccountPath, "ca.crt");
        if (!File.Exists(tokenFile))
        {
            throw new KubernetesException(KubernetesFailureKind.Configuration, $"In a pod (KUBERNETES_SERVICE_HOST is set) but there is no service-account token at {tokenFile}: is automountServiceAccountToken false?");
        }

        X509Certificate2Collection? authorities = null;
        if (File.Exists(caFile))
        {
            authorities = [];
            authorities.ImportFromPemFile(caFile);
        }

        return new KubernetesCredentials(server, "in-cluster service account", null, authorities, false, null, null, null, tokenFile, null);
    }

    private static KubernetesCredentials FromKubeConfig(string path, string? context)
    {
        KubernetesClientConfiguration config;
        try
        {
            config = KubernetesClientConfiguration.BuildConfigFromConfigFile(path, context);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The reader's messages name the file and what is missing; they never carry a credential value. The
            // inner exception is left out all the same (a YAML error could quote a line).
            throw new KubernetesException(KubernetesFailureKind.Configuration, $"The kubeconfig '{path}'{(context is null ? string.Empty : $" (context '{context}')")} cannot be used: {ex.GetType().Name}: {Shorten(ex.Message).TrimEnd('.')}.");
        }

        if (!Uri.TryCreate(config.Host, UriKind.Absolute, out var server) || (server.Scheme != Uri.UriSchemeHttps && server.Scheme != Uri.UriSchemeHttp))
        {
            throw new KubernetesException(KubernetesFailureKind.Configuration, $"The kubeconfig '{path}' names no usable API server address.");
        }

        X509Certificate2? clientCertificate = null;
        try
        {
            if (!string.IsNullOrEmpty(config.ClientCertificateData) && !string.IsNullOrEmpty(config.ClientCertificateKeyData))
            {
                clientCertificate = X509Certificate2.CreateFromPem(
                    Encoding.UTF8.GetString(Convert.FromBase64String(config.ClientCertificateData)),
                    Encoding.UTF8.GetString(Convert.FromBase64String(config.ClientCertificateKeyData)));
            }
            else if (!string.IsNullOrEmpty(config.ClientCertificateFilePath) && !string.IsNullOrEmpty(config.ClientKeyFilePath))
            {
                clientCertificate = X509Certificate2.CreateFromPemFile(config.ClientCertificateFilePath, config.ClientKeyFilePath);
            }
        }
        catch (Exception ex) when (ex is FormatException or System.Security.Cryptography.CryptographicException or IOException)
        {
            throw new KubernetesException(KubernetesFailureKind.Configuration, $"The kubeconfig '{path}': the client certificate or key cannot be read ({ex.GetType().Name}).");
        }

        var source = $"kubeconfig {path}" + (string.IsNullOrEmpty(config.CurrentContext) ? string.Empty : $" (context {config.CurrentContext})");
        return new KubernetesCredentials(
            server, source, string.IsNullOrEmpty(config.Namespace) ? null : config.Namespace, config.SslCaCerts, config.SkipTlsVerify,
            config.TlsServerName, clientCertificate, string.IsNullOrEmpty(config.AccessToken) ? null : config.AccessToken, null, config.TokenProvider);
    }

    /// <summary>
    /// Gets the bearer token to send, if any. A token file is read again when its size or time stamp changes (the
    /// kubelet rotates projected tokens), or when <paramref name="refresh"/> is set after a 401.
    /// </summary>
    public async ValueTask<string?> GetTokenAsync(bool refresh, CancellationToken cancellationToken)
    {
        if (_tokenProvider is not null)
        {
            var header = await _tokenProvider.GetAuthenticationHeaderAsync(cancellationToken).ConfigureAwait(false);
            return header?.Parameter;
        }

        if (_tokenFile is null)
        {
            return _staticToken;
        }

        lock (_tokenLock)
        {
            try
            {
                var info = new FileInfo(_tokenFile);
                if (refresh || _fileToken is null || info.LastWriteTimeUtc != _fileStamp || info.Length != _fileLength)
                {
                    var token = File.ReadAllText(_tokenFile).Trim();
                    if (token.Length > 0 || _fileToken is null)
                    {
                        _fileToken = token;
                        _fileStamp = info.LastWriteTimeUtc;
                        _fileLength = info.Length;
                    }

                    // Else an empty file after a token: one rewritten in place, read between its truncation and its
                    // write (a token agent that does not swap a symlink as the kubelet does). The last token stays,
                    // and the stamp is not taken, so the next request reads the file again.
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Keep the last token read: the kubelet swaps the file through a symlink, so a read can race it.
                if (_fileToken is null)
                {
                    throw new KubernetesException(KubernetesFailureKind.Configuration, $"The service-account token file {_tokenFile} cannot be read ({ex.GetType().Name}).");
                }
            }

            return _fileToken;
        }
    }

    /// <summary>Creates the handler that talks to the API server with these credentials.</summary>
    public SocketsHttpHandler CreateHandler(TimeSpan connectTimeout)
    {
        var handler = new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(90),
            ConnectTimeout = connectTimeout,

            // A redirect would resend the bearer token to another host: the API server never redirects these reads.
            AllowAutoRedirect = false,

            // Every watch is a long request: over HTTP/2 they share connections, and more than one connection's
            // stream limit opens another.
            EnableMultipleHttp2Connections = true,
            UseProxy = false,
        };

        if (ClientCertificate is { } certificate)
        {
            handler.SslOptions.ClientCertificates = [certificate];
        }

        if (!string.IsNullOrEmpty(TlsServerName))
        {
            handler.SslOptions.TargetHost = TlsServerName;
        }

        if (SkipTlsVerify)
        {
            // The kubeconfig says insecure-skip-tls-verify: true; kubectl honours it, and so do we (a development
            // cluster). Never the default, and never set from Mesh:Kubernetes.
#pragma warning disable CA5359
            handler.SslOptions.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
#pragma warning restore CA5359
        }
        else if (Authorities is { Count: > 0 } authorities)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) => ValidateServer(authorities, certificate, errors);
        }

        return handler;
    }

    private static bool ValidateServer(X509Certificate2Collection authorities, System.Security.Cryptography.X509Certificates.X509Certificate? certificate, SslPolicyErrors errors)
    {
        // The host name must match; the chain must end at the cluster CA (and only at it).
        if (certificate is null || (errors & (SslPolicyErrors.RemoteCertificateNotAvailable | SslPolicyErrors.RemoteCertificateNameMismatch)) != 0)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        using var leaf = new X509Certificate2(certificate);
        return chain.Build(leaf);
    }

    private static string Shorten(string text) => text.Length <= 256 ? text : string.Concat(text.AsSpan(0, 256), "…");
}
