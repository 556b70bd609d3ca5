using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
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
internal sealed class ConsulHttpMessageHandlerBuilderFilter(IOptionsMonitor<ConsulOptions> options) : IHttpMessageHandlerBuilderFilter
{
    public Action<HttpMessageHandlerBuilder> Configure(Action<HttpMessageHandlerBuilder> next) => builder =>
    {
        next(builder);
        if (builder.Name != ConsulClient.HttpClientName)
        {
            return;
        }

        builder.AdditionalHandlers.Clear();
        builder.PrimaryHandler = CreatePrimaryHandler(options.CurrentValue);
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

        if (!string.IsNullOrEmpty(options.CaCertificateFile))
        {
            var authorities = new X509Certificate2Collection();
            authorities.ImportFromPemFile(options.CaCertificateFile);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                ValidateWithAuthority(certificate, chain, errors, authorities);
        }

        if (!string.IsNullOrEmpty(options.ClientCertificateFile))
        {
            using var pem = X509Certificate2.CreateFromPemFile(options.ClientCertificateFile, options.ClientKeyFile);

            // A PEM-loaded key is ephemeral; SslStream on Windows needs a persisted one, so round-trip through PKCS#12.
            var certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), password: null);
            handler.SslOptions.ClientCertificates = [certificate];
        }

        return handler;
    }

    /// <summary>Accepts the server certificate only if it matches the host name and chains to one of <paramref name="authorities"/>.</summary>
    internal static bool ValidateWithAuthority(X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors, X509Certificate2Collection authorities)
    {
        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presented is not null)
        {
            foreach (var element in presented.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        var leaf = certificate as X509Certificate2;
        using var owned = leaf is null ? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()) : null;
        return chain.Build(leaf ?? owned!);
    }
}
