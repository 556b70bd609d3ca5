using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Model;
using Microsoft.Extensions.Logging;

namespace MeshClient.Security;

/// <summary>
/// Service-to-service TLS (<see cref="MeshOptions.Tls"/>): loads the certificates of every service from the last
/// valid options, and configures the primary handler of each mesh client so that a connection opened by a request
/// to a mesh endpoint is validated with that service's trust and presents its client certificate, while every other
/// connection (a host outside the mesh, a redirect) keeps the platform's validation and presents nothing. The
/// primary handler is configured, never replaced; callbacks the application set stay in charge of the other
/// connections. Nothing here runs per request: the lookups happen once per connection.
/// </summary>
/// <remarks>
/// Rotation: while some TLS file is configured, one timer of the injected <see cref="TimeProvider"/> reads the files
/// again every <see cref="MeshTlsOptions.ReloadInterval"/> (<see cref="TlsFiles"/>); a connection takes the trust
/// current when it is opened, so new connections use rotated certificates and open ones keep theirs. Polling rather
/// than FileSystemWatcher: it sees Kubernetes' atomic <c>..data</c> symlink swaps and writes in container mounts,
/// which inotify can miss, and it runs on fake time in tests. The timer is disposed with the service provider.
/// </remarks>
internal sealed partial class MeshTls(MeshOptionsChangeNotifier options, TimeProvider time, MeshConfigurationPath path, ILogger<MeshTls> logger) : IDisposable
{
    private readonly Lock _lock = new();
    private volatile State? _state;
    private readonly TlsPollTimer _poller = new(time);
    private bool _disposed;

    /// <summary>Gets a value indicating whether any TLS setting is configured (otherwise handlers are left alone).</summary>
    public bool IsConfigured => GetState().Configured;

    /// <summary>Gets the trust of a service's endpoints, or <see langword="null"/> when nothing is configured for it.</summary>
    public TlsTrust? ForService(string service)
    {
        var state = GetState();
        return state.Services.TryGetValue(service, out var binding) ? binding.Current : state.Global?.Current;
    }

    /// <summary>
    /// Gets the trust of the connection a request opens: that of its service when the request is being sent to the
    /// endpoint the balancer chose (not to the target of a redirect), else <see langword="null"/>.
    /// </summary>
    public TlsTrust? ForRequest(HttpRequestMessage? request) =>
        request is not null
        && request.Options.TryGetValue(MeshRequestContext.Key, out var context)
        && context.IsAttemptUri(request.RequestUri) // any of a hedged call's attempts in flight
            ? ForService(context.Backend) // the service whose endpoint it is (its route's backend, if routed)
            : null;

    /// <summary>Configures the TLS of a mesh client's primary handler, when TLS is configured at all.</summary>
    public void ConfigurePrimaryHandler(HttpMessageHandler primary, string clientName)
    {
        if (!IsConfigured)
        {
            return;
        }

        try
        {
            switch (primary)
            {
                case SocketsHttpHandler sockets:
                    Configure(sockets);
                    break;
                case HttpClientHandler handler:
                    Configure(handler);
                    break;
                default:
                    Log.TlsNotApplied(logger, clientName, primary.GetType().FullName ?? primary.GetType().Name);
                    break;
            }
        }
        catch (InvalidOperationException)
        {
            // A primary handler shared across rotations has already sent requests: its settings are frozen.
            Log.TlsNotApplied(logger, clientName, primary.GetType().FullName ?? primary.GetType().Name);
        }
    }

    private void Configure(SocketsHttpHandler handler)
    {
        // The TLS callbacks of SocketsHttpHandler see the SslStream, not the request; the connect callback sees the
        // request that opens the connection. The connection's stream links the two.
        var connections = new ConditionalWeakTable<Stream, TlsTrust>();
        var connect = handler.ConnectCallback;
        handler.ConnectCallback = async (context, cancellationToken) =>
        {
            var stream = connect is null
                ? await ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false)
                : await connect(context, cancellationToken).ConfigureAwait(false);
            if (ForRequest(context.InitialRequestMessage) is { } trust)
            {
                connections.AddOrUpdate(stream, trust);
            }

            return stream;
        };

        TlsTrust? Find(object sender) =>
            sender is AuthenticatedStream ssl && connections.TryGetValue(GetInnerStream(ssl), out var trust) ? trust : null;

        var ssl = handler.SslOptions;
        var validate = ssl.RemoteCertificateValidationCallback;
        ssl.RemoteCertificateValidationCallback = (sender, certificate, chain, errors) =>
            Find(sender) is { } trust
                ? trust.ValidateServer(certificate, chain, errors)
                : validate?.Invoke(sender, certificate, chain, errors) ?? errors == SslPolicyErrors.None;

        var select = ssl.LocalCertificateSelectionCallback;
        ssl.LocalCertificateSelectionCallback = (sender, targetHost, local, remote, issuers) =>
        {
            if (Find(sender) is { } trust)
            {
                return trust.ClientCertificate!;
            }

            return select is not null ? select(sender, targetHost, local, remote, issuers) : (local is { Count: > 0 } ? local[0] : null!);
        };
    }

    private void Configure(HttpClientHandler handler)
    {
        // HttpClientHandler passes the request that opened the connection to its validation callback.
        var validate = handler.ServerCertificateCustomValidationCallback;
        handler.ServerCertificateCustomValidationCallback = (request, certificate, chain, errors) =>
            ForRequest(request) is { } trust
                ? trust.ValidateServer(certificate, chain, errors)
                : validate?.Invoke(request, certificate, chain, errors) ?? errors == SslPolicyErrors.None;

        // It has no per-connection choice of client certificate: the global one is offered to any server that asks.
        // Its collection is read during handshakes and cannot be swapped safely, so a rotated client certificate
        // reaches this handler's successor (the factory's HandlerLifetime); the trust above rotates at once.
        if (GetState().Global?.Current.ClientCertificate is { } certificate)
        {
            handler.ClientCertificateOptions = ClientCertificateOption.Manual;
            handler.ClientCertificates.Add(certificate);
        }
    }

    /// <summary>What SocketsHttpHandler does without a connect callback.</summary>
    private static async ValueTask<Stream> ConnectAsync(System.Net.DnsEndPoint endpoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    // AuthenticatedStream.InnerStream is protected; UnsafeAccessor reads it without reflection (trim- and AOT-safe).
    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "get_InnerStream")]
    private static extern Stream GetInnerStream(AuthenticatedStream stream);

    /// <summary>Stops polling the files (the service provider is being disposed).</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _poller.Dispose();
        }
    }

    private State GetState()
    {
        var current = options.Current;
        var state = _state;
        if (state is not null && ReferenceEquals(state.Options, current))
        {
            return state;
        }

        lock (_lock)
        {
            state = _state;
            if (state is null || !ReferenceEquals(state.Options, current))
            {
                state = Build(current, state);
                _state = state;
            }

            return state;
        }
    }

    /// <summary>One timer tick: reads the files of every TLS setting in use (each file set refreshes under its own lock).</summary>
    private void Poll()
    {
        if (!Volatile.Read(ref _disposed))
        {
            foreach (var files in GetState().Files.Values)
            {
                files.Refresh();
            }
        }
    }

    private State Build(MeshOptions current, State? previous)
    {
        var global = current.Tls;
        var files = new Dictionary<TlsFileSet, TlsFiles>();
        var configured = !IsEmpty(global);
        var globalBinding = configured ? Bind($"{path.Path}:Tls", global, global, files, previous) : null;
        var services = new Dictionary<string, TlsBinding>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, service) in current.Services)
        {
            if (service is not null && !IsEmpty(service.Tls))
            {
                configured = true;
                services[name] = Bind($"{path.Path}:Services:{name}:Tls", service.Tls, global, files, previous);
            }
        }

        _poller.Schedule(files.Keys.Any(f => f.CaCertificateFile is not null || f.ClientCertificateFile is not null), global.ReloadInterval ?? MeshTlsOptions.DefaultReloadInterval, Poll);
        return new State(current, configured, globalBinding, services, files);
    }

    /// <summary>
    /// The binding of one key. Keys naming the same files share one <see cref="TlsFiles"/> (one read, one log per
    /// rotation). Files already watched before a configuration reload keep their watcher, read again now: a reload
    /// never drops good certificates for files caught half-written.
    /// </summary>
    private TlsBinding Bind(string key, MeshTlsOptions tls, MeshTlsOptions global, Dictionary<TlsFileSet, TlsFiles> files, State? previous)
    {
        var certificateFile = tls.ClientCertificateFile ?? global.ClientCertificateFile;
        var keyFile = tls.ClientCertificateFile is not null ? tls.ClientKeyFile : global.ClientKeyFile;
        var set = new TlsFileSet(
            NullIfEmpty(tls.CaCertificateFile ?? global.CaCertificateFile),
            NullIfEmpty(certificateFile),
            NullIfEmpty(certificateFile) is null ? null : NullIfEmpty(keyFile));
        if (!files.TryGetValue(set, out var watched))
        {
            if (previous is not null && previous.Files.TryGetValue(set, out watched))
            {
                watched.Refresh();
            }
            else
            {
                watched = new TlsFiles(set, key, logger);
            }

            files[set] = watched;
        }

        return new TlsBinding(watched, tls.TrustSystemCertificates ?? global.TrustSystemCertificates ?? false, NullIfEmpty(tls.ServerName ?? global.ServerName));
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private static bool IsEmpty(MeshTlsOptions tls) =>
        string.IsNullOrEmpty(tls.CaCertificateFile) && string.IsNullOrEmpty(tls.ClientCertificateFile)
        && string.IsNullOrEmpty(tls.ServerName) && tls.TrustSystemCertificates is null;

    private sealed record State(MeshOptions Options, bool Configured, TlsBinding? Global, Dictionary<string, TlsBinding> Services, Dictionary<TlsFileSet, TlsFiles> Files);

    /// <summary>
    /// One key's TLS: its files' current certificates with the key's own trust settings. The trust is rebuilt (a few
    /// fields, once per rotation) when the files switched, so each connection sees one consistent snapshot.
    /// </summary>
    private sealed class TlsBinding(TlsFiles files, bool trustSystem, string? serverName)
    {
        private volatile Built? _built;

        public TlsTrust Current
        {
            get
            {
                var material = files.Current;
                var built = _built;
                if (built is null || !ReferenceEquals(built.Material, material))
                {
                    built = new Built(material, ReferenceEquals(material, TlsMaterial.Unreadable)
                        ? TlsTrust.RejectAll
                        : new TlsTrust(material.Authorities, trustSystem, serverName, material.ClientCertificate));
                    _built = built;
                }

                return built.Trust;
            }
        }

        /// <summary>The trust built from one version of the files.</summary>
        private sealed record Built(TlsMaterial Material, TlsTrust Trust);
    }

    private static partial class Log
    {
        [LoggerMessage(20, LogLevel.Warning, "HttpClient '{Client}': its primary handler {Handler} is neither a SocketsHttpHandler nor an HttpClientHandler (or was already used), so Mesh:Tls cannot be applied to it; its mesh calls use that handler's own TLS settings.", EventName = "TlsNotApplied")]
        public static partial void TlsNotApplied(ILogger logger, string client, string handler);
    }
}
