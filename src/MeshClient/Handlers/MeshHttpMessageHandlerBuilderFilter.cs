using System.Collections.Concurrent;
using System.Net;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Handlers;
using MeshClient.Resilience;
using MeshClient.Security;
using MeshClient.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshClient.Handlers;

/// <summary>
/// Adds the mesh handlers to every factory client that should have them. A filter runs after every other
/// configuration of a client, so the mesh handlers end up innermost (closest to the socket) and the user's own
/// handlers stay outside them. It also removes the handler of <c>IHttpClientBuilder.AddServiceDiscovery()</c>,
/// which would balance a second time, ignore weights, and leak a resolver per handler rotation; and, unless
/// <see cref="MeshOptions.KeepOtherResilienceHandlers"/> is set, the resilience handlers of
/// Microsoft.Extensions.Http.Resilience, which would retry calls the mesh has already retried (Aspire's
/// ServiceDefaults adds the standard one to every client).
/// </summary>
internal sealed partial class MeshHttpMessageHandlerBuilderFilter(
    IOptions<MeshClientSelection> selection,
    MeshClient.Configuration.MeshOptionsChangeNotifier options,
    ILogger<MeshHttpMessageHandlerBuilderFilter> logger) : IHttpMessageHandlerBuilderFilter
{
    private const string ServiceDiscoveryHandlerType = "Microsoft.Extensions.ServiceDiscovery.Http.ResolvingHttpDelegatingHandler";

    // The clients already told that their primary handler keeps following redirects (handlers are rebuilt every 2 minutes).
    private readonly ConcurrentDictionary<string, byte> _keptRedirects = new(StringComparer.Ordinal);

    /// <summary>
    /// The handler type of <c>AddStandardResilienceHandler()</c>, <c>AddStandardHedgingHandler()</c> (two of them) and
    /// <c>AddResilienceHandler(...)</c>: all three create this exact public type, which exposes nothing of its pipeline,
    /// so a standard pipeline cannot be told from a custom one. Matched by name (as the discovery handler is) and exactly:
    /// a subclass is the application's own handler and stays.
    /// </summary>
    private const string ResilienceHandlerType = "Microsoft.Extensions.Http.Resilience.ResilienceHandler";

    // Clients already warned about (event 13): the filter runs at every handler rotation (2 minutes by default).
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _warnedResilience = new(StringComparer.Ordinal);

    public Action<HttpMessageHandlerBuilder> Configure(Action<HttpMessageHandlerBuilder> next) => builder =>
    {
        next(builder);
        var name = builder.Name ?? string.Empty;
        var chosen = selection.Value;
        if (chosen.Excluded.Contains(name) || !(options.Current.ApplyToAllHttpClients || chosen.Included.Contains(name)))
        {
            return;
        }

        var handlers = builder.AdditionalHandlers;
        for (var i = handlers.Count - 1; i >= 0; i--)
        {
            if (handlers[i].GetType().FullName == ServiceDiscoveryHandlerType)
            {
                handlers.RemoveAt(i);
                Log.RemovedServiceDiscoveryHandler(logger, name);
            }
        }

        if (!options.Current.KeepOtherResilienceHandlers)
        {
            var removed = 0;
            for (var i = handlers.Count - 1; i >= 0; i--)
            {
                if (handlers[i].GetType().FullName == ResilienceHandlerType)
                {
                    handlers.RemoveAt(i);
                    removed++;
                }
            }

            if (removed > 0 && _warnedResilience.TryAdd(name, true))
            {
                Log.RemovedResilienceHandlers(logger, name, removed);
            }
        }

        var services = builder.Services;
        var time = services.GetRequiredService<TimeProvider>();

        // Outer to inner: one span and the call metrics; total timeout and retries; hedging of one try; discovery and the pick;
        // the attempt timeout. The primary handler then emits the per-attempt Client span.
        handlers.Add(new MeshCallHandler(
            services.GetRequiredService<MeshInstrumentation>(),
            time,
            TakeOverRedirects(builder.PrimaryHandler, name),
            new DeadlinePropagation(options),
            services.GetRequiredService<Routing.MeshRouter>()));
        handlers.Add(new MeshRetryHandler(services.GetRequiredService<ResilienceRegistry>()));
        handlers.Add(new MeshHedgingHandler(services.GetRequiredService<Hedging.HedgingRegistry>())); // one try at a time
        handlers.Add(new MeshBalancingHandler(services.GetRequiredService<ServiceTableRegistry>()));
        handlers.Add(new MeshAttemptTimeoutHandler());

        // The connect timeout first: the TLS configuration wraps the connect callback it installs.
        services.GetRequiredService<MeshConnectTimeout>().ConfigurePrimaryHandler(builder.PrimaryHandler, name);
        services.GetRequiredService<Security.MeshTls>().ConfigurePrimaryHandler(builder.PrimaryHandler, name);
        GrpcSubchannels.TurnOff(builder.PrimaryHandler); // a gRPC channel on this client: each call through the mesh
    };

    /// <summary>
    /// Turns off the redirect following of the primary handler (the mesh follows redirects above its handlers, see
    /// <see cref="MeshRedirects"/>) and returns how many it followed, or 0 when it did not or cannot be changed, or
    /// when the primary carries credentials that .NET does not send across a redirect.
    /// </summary>
    private int TakeOverRedirects(HttpMessageHandler primary, string client)
    {
        try
        {
            switch (primary)
            {
                case SocketsHttpHandler { AllowAutoRedirect: true } sockets when StaysOnRedirect(sockets.Credentials, useDefaultCredentials: false):
                case HttpClientHandler { AllowAutoRedirect: true } handler when StaysOnRedirect(handler.Credentials, handler.UseDefaultCredentials):
                    // Every hop the mesh sends reaches the primary's authentication stage again, and .NET's has no
                    // per-request opt-out (a second primary without credentials cannot be cloned faithfully: TLS
                    // options, callbacks, cookies, proxy), so such a client keeps .NET's own redirect following.
                    if (_keptRedirects.TryAdd(client, 0))
                    {
                        Log.RedirectsLeftToPrimaryHandler(logger, client);
                    }

                    return 0;
                case SocketsHttpHandler { AllowAutoRedirect: true } sockets:
                    sockets.AllowAutoRedirect = false;
                    return sockets.MaxAutomaticRedirections;
                case HttpClientHandler { AllowAutoRedirect: true } handler:
                    handler.AllowAutoRedirect = false;
                    return handler.MaxAutomaticRedirections;
                default:
                    return 0;
            }
        }
        catch (InvalidOperationException)
        {
            // A primary handler that has already sent requests cannot be changed: it keeps following redirects.
            return 0;
        }
    }

    /// <summary>
    /// Whether credentials of the primary handler go with a request to another host that .NET would send them to
    /// only without a redirect: a <see cref="NetworkCredential"/> or the default credentials. SocketsHttpHandler
    /// authenticates its redirect hops only with a <see cref="CredentialCache"/> (which names the hosts it is for).
    /// </summary>
    private static bool StaysOnRedirect(ICredentials? credentials, bool useDefaultCredentials) =>
        useDefaultCredentials || credentials is not (null or CredentialCache);

    private static partial class Log
    {
        [LoggerMessage(15, LogLevel.Warning, "HttpClient '{Client}': its primary handler has credentials that .NET does not send across a redirect; it follows this client's redirects itself, so redirect hops get no mesh work.", EventName = "RedirectsLeftToPrimaryHandler")]
        public static partial void RedirectsLeftToPrimaryHandler(ILogger logger, string client);

        [LoggerMessage(10, LogLevel.Warning, "HttpClient '{Client}': removed the handler of AddServiceDiscovery(); the mesh discovers and balances this client itself.", EventName = "RemovedServiceDiscoveryHandler")]
        public static partial void RemovedServiceDiscoveryHandler(ILogger logger, string client);

        [LoggerMessage(13, LogLevel.Warning, "HttpClient '{Client}': removed {Count} resilience handler(s) of Microsoft.Extensions.Http.Resilience (AddStandardResilienceHandler, AddStandardHedgingHandler or AddResilienceHandler); the mesh retries, times out and ejects for this client itself. Set Mesh:KeepOtherResilienceHandlers to true to keep them.", EventName = "RemovedResilienceHandlers")]
        public static partial void RemovedResilienceHandlers(ILogger logger, string client, int count);
    }
}
