using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using MeshClient.Balancing;
using MeshClient.Discovery;
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
internal sealed partial class MeshTls(MeshOptionsChangeNotifier options, ILogger<MeshTls> logger)
{
    private readonly Lock _lock = new();
    private volatile State? _state;

    /// <summary>Gets a value indicating whether any TLS setting is configured (otherwise handlers are left alone).</summary>
    public bool IsConfigured => GetState().Configured;

    /// <summary>Gets the trust of a service's endpoints, or <see langword="null"/> when nothing is configured for it.</summary>
    public TlsTrust? ForService(string service)
    {
        var state = GetState();
        return state.Services.TryGetValue(service, out var trust) ? trust : state.Global;
    }

    /// <summary>
    /// Gets the trust of the connection a request opens: that of its service when the request is being sent to the
    /// endpoint the balancer chose (not to the target of a redirect), else <see langword="null"/>.
    /// </summary>
    public TlsTrust? ForRequest(HttpRequestMessage? request) =>
        request is not null
        && request.Options.TryGetValue(MeshRequestContext.Key, out var context)
        && context.AttemptUri is { } attempt
        && ReferenceEquals(attempt, request.RequestUri)
            ? ForService(context.ServiceName)
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
        if (GetState().Global?.ClientCertificate is { } certificate)
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
                state = Build(current);
                _state = state;
            }

            return state;
        }
    }

    private State Build(MeshOptions current)
    {
        var global = current.Tls;
        var configured = !IsEmpty(global);
        var globalTrust = configured ? Load("Tls", global, global) : null;
        var services = new Dictionary<string, TlsTrust>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, service) in current.Services)
        {
            if (service is not null && !IsEmpty(service.Tls))
            {
                configured = true;
                services[name] = Load($"Services:{name}:Tls", service.Tls, global);
            }
        }

        return new State(current, configured, globalTrust, services);
    }

    private TlsTrust Load(string key, MeshTlsOptions tls, MeshTlsOptions global)
    {
        var certificateFile = tls.ClientCertificateFile ?? global.ClientCertificateFile;
        var keyFile = tls.ClientCertificateFile is not null ? tls.ClientKeyFile : global.ClientKeyFile;
        try
        {
            return TlsTrust.Load(
                tls.CaCertificateFile ?? global.CaCertificateFile,
                tls.TrustSystemCertificates ?? global.TrustSystemCertificates ?? false,
                tls.ServerName ?? global.ServerName,
                certificateFile,
                keyFile);
        }
        catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException)
        {
            // Validated at start-up; a file that became unreadable since fails closed.
            Log.TlsFilesUnreadable(logger, key, ex);
            return TlsTrust.RejectAll;
        }
    }

    private static bool IsEmpty(MeshTlsOptions tls) =>
        string.IsNullOrEmpty(tls.CaCertificateFile) && string.IsNullOrEmpty(tls.ClientCertificateFile)
        && string.IsNullOrEmpty(tls.ServerName) && tls.TrustSystemCertificates is null;

    private sealed record State(MeshOptions Options, bool Configured, TlsTrust? Global, Dictionary<string, TlsTrust> Services);

    private static partial class Log
    {
        [LoggerMessage(20, LogLevel.Warning, "HttpClient '{Client}': its primary handler {Handler} is neither a SocketsHttpHandler nor an HttpClientHandler (or was already used), so Mesh:Tls cannot be applied to it; its mesh calls use that handler's own TLS settings.", EventName = "TlsNotApplied")]
        public static partial void TlsNotApplied(ILogger logger, string client, string handler);

        [LoggerMessage(21, LogLevel.Error, "Mesh {Key}: the certificate files cannot be read; connections to the endpoints concerned are refused until they can.", EventName = "TlsFilesUnreadable")]
        public static partial void TlsFilesUnreadable(ILogger logger, string key, Exception exception);
    }
}
