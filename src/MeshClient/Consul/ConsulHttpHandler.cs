using System.Net;
using System.Net.Security;
using MeshClient.Configuration;
using MeshClient.Security;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Options;

namespace MeshClient.Consul;

/// <summary>
/// Builds the primary handler of the Consul client (TLS with a custom CA and a client certificate) and keeps every
/// other handler off that client. A filter rather than <c>ConfigurePrimaryHttpMessageHandler</c>, because a filter
/// runs after every configuration action, including <c>ConfigureHttpClientDefaults</c> calls made after
/// <c>AddConsul()</c>: a default resilience handler (30 s total timeout) would cut blocking queries, and a default
/// <c>AddServiceDiscovery()</c> would send the Consul client through discovery (Steeltoe's recursion pitfall).
/// </summary>
internal sealed class ConsulHttpMessageHandlerBuilderFilter(LastValidOptions<ConsulOptions> options, ConsulTls tls) : IHttpMessageHandlerBuilderFilter, IDisposable
{
    private readonly Lock _lock = new();
    private readonly List<HttpMessageHandler> _handlers = [];
    private bool _disposed;

    /// <summary>Gets the handlers built and not yet disposed (tests).</summary>
    internal IReadOnlyList<HttpMessageHandler> Handlers
    {
        get
        {
            lock (_lock)
            {
                return [.. _handlers];
            }
        }
    }

    public Action<HttpMessageHandlerBuilder> Configure(Action<HttpMessageHandlerBuilder> next) => builder =>
    {
        next(builder);
        if (builder.Name != ConsulClient.HttpClientName)
        {
            return;
        }

        builder.AdditionalHandlers.Clear();
        var handler = new ConsulTokenHandler(CreatePrimaryHandler(options.Current, tls));
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _handlers.Add(handler);
        }

        builder.PrimaryHandler = handler;
    };

    /// <summary>
    /// Disposes the handlers this filter built, and so their connections, with the service provider. The factory
    /// never disposes a handler whose lifetime is infinite (this client's: see <c>AddConsul()</c>), so without this
    /// the connections to the agent stayed open after the host was gone, until Consul or the OS closed them.
    /// </summary>
    public void Dispose()
    {
        HttpMessageHandler[] handlers;
        lock (_lock)
        {
            _disposed = true;
            handlers = [.. _handlers];
            _handlers.Clear();
        }

        foreach (var handler in handlers)
        {
            handler.Dispose();
        }
    }

    internal static SocketsHttpHandler CreatePrimaryHandler(ConsulOptions options, ConsulTls tls)
    {
        var handler = new SocketsHttpHandler
        {
            // Set explicitly because the factory does not rotate this handler: DNS changes of the agent are seen.
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(90),
            ConnectTimeout = options.RequestTimeout,
            AutomaticDecompression = DecompressionMethods.GZip,

            // A redirect would resend X-Consul-Token to another host: Consul never redirects, so refuse them.
            AllowAutoRedirect = false,

            // Over HTTP/2 (HTTPS), more watches than one connection's stream limit open another connection.
            EnableMultipleHttp2Connections = true,
        };

        // The trust is read once per connection, when its handshake runs: the files rotate under the handler (which
        // the factory never replaces). With a CA file, only the CA file is trusted (never the system store as well,
        // never a blind accept); the host name, the dates and the server-authentication usage are checked too.
        // Without any TLS file, the platform's validation applies and no client certificate is offered.
        var ssl = handler.SslOptions;
        ssl.RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
            tls.Current is { } trust ? trust.ValidateServer(certificate, chain, errors) : errors == SslPolicyErrors.None;
        ssl.LocalCertificateSelectionCallback = (_, _, _, _, _) => tls.Current?.ClientCertificate!;
        return handler;
    }
}

/// <summary>
/// Puts the ACL token into <c>X-Consul-Token</c> at the last moment, inside the primary handler. Every handler above
/// it — HttpClient's request logging included, whose structured state carries raw header values even where the
/// message shows <c>*</c> — sees a request without the token; it travels from <see cref="ConsulClient"/> to here in
/// <see cref="HttpRequestMessage.Options"/>, which nothing logs, and is removed again once the request is sent.
/// </summary>
internal sealed class ConsulTokenHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    public const string TokenHeader = "X-Consul-Token";

    public static readonly HttpRequestOptionsKey<string> TokenOption = new("MeshClient.Consul.Token");

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!request.Options.TryGetValue(TokenOption, out var token))
        {
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }

        request.Headers.TryAddWithoutValidation(TokenHeader, token);
        try
        {
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            request.Headers.Remove(TokenHeader);
        }
    }
}
