using System.Net;
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
internal sealed class ConsulHttpMessageHandlerBuilderFilter(ConsulOptionsHolder options) : IHttpMessageHandlerBuilderFilter
{
    public Action<HttpMessageHandlerBuilder> Configure(Action<HttpMessageHandlerBuilder> next) => builder =>
    {
        next(builder);
        if (builder.Name != ConsulClient.HttpClientName)
        {
            return;
        }

        builder.AdditionalHandlers.Clear();
        builder.PrimaryHandler = new ConsulTokenHandler(CreatePrimaryHandler(options.Current));
    };

    internal static SocketsHttpHandler CreatePrimaryHandler(ConsulOptions options)
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

        if (!string.IsNullOrEmpty(options.CaCertificateFile) || !string.IsNullOrEmpty(options.ClientCertificateFile))
        {
            // Only the CA file is trusted (never the system store as well, never a blind accept); the host name,
            // the dates and the server-authentication usage are checked too.
            var trust = TlsTrust.Load(options.CaCertificateFile, trustSystem: false, serverName: null, options.ClientCertificateFile, options.ClientKeyFile);
            if (trust.Authorities is not null)
            {
                handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) => trust.ValidateServer(certificate, chain, errors);
            }

            if (trust.ClientCertificate is { } certificate)
            {
                handler.SslOptions.ClientCertificates = [certificate];
            }
        }

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
