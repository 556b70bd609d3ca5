using System.Net;
using System.Net.Sockets;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using Microsoft.Extensions.Logging;

namespace MeshClient.Resilience;

/// <summary>
/// The connect timeout of mesh endpoints (<see cref="MeshResilienceOptions.ConnectTimeout"/>), enforced in the connect
/// callback of each mesh client's <see cref="SocketsHttpHandler"/> primary handler: a connection opened for an attempt
/// on an endpoint the balancer chose gets its service's timeout; every other connection (a host outside the mesh, a
/// redirect target) is opened exactly as before. The handler's own <see cref="SocketsHttpHandler.ConnectTimeout"/> is
/// infinite by default, so a node that is gone (SYNs dropped, not refused) used to hold an attempt until the attempt
/// timeout (10 s); it would also apply to every host, not only to mesh endpoints, and could not differ per service.
/// </summary>
/// <remarks>
/// A connection that times out here fails with a <see cref="TimeoutException"/>, which SocketsHttpHandler wraps, like
/// any error of a connect callback, in an <see cref="HttpRequestException"/> with
/// <see cref="HttpRequestError.ConnectionError"/>: the balancer records the endpoint as unreachable and the call is
/// requeued at once (nothing was sent). Connection attempts are not cancelled with the request that started them
/// (measured on .NET 10: the callback's token stays uncancelled when the caller gives up), so the timeout is what ends
/// an attempt on a node that is gone, rather than leaving it pending for the kernel's SYN retries (about 2 min).
/// </remarks>
internal sealed partial class MeshConnectTimeout(ResilienceRegistry resilience, TimeProvider time, ILogger<MeshConnectTimeout> logger)
{
    /// <summary>
    /// Installs the connect timeout on a mesh client's primary handler, unless the application chose a connect timeout
    /// itself (then that one applies to every connection, as it always did).
    /// </summary>
    public void ConfigurePrimaryHandler(HttpMessageHandler primary, string clientName)
    {
        if (primary is not SocketsHttpHandler sockets)
        {
            Log.ConnectTimeoutNotApplied(logger, clientName, primary.GetType().FullName ?? primary.GetType().Name);
            return;
        }

        try
        {
            if (sockets.ConnectTimeout != Timeout.InfiniteTimeSpan)
            {
                return;
            }

            var connect = sockets.ConnectCallback;
            sockets.ConnectCallback = (context, cancellationToken) => ConnectAsync(connect, context, cancellationToken);
        }
        catch (InvalidOperationException)
        {
            // A primary handler shared across rotations has already sent requests: its settings are frozen.
            Log.ConnectTimeoutNotApplied(logger, clientName, primary.GetType().FullName ?? primary.GetType().Name);
        }
    }

    private async ValueTask<Stream> ConnectAsync(
        Func<SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>>? connect,
        SocketsHttpConnectionContext context,
        CancellationToken cancellationToken)
    {
        if (TimeoutOf(context) is not { } timeout)
        {
            return connect is null
                ? await DefaultConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false)
                : await connect(context, cancellationToken).ConfigureAwait(false);
        }

        // The injected clock (fake in tests); the handler's token (the pool's, not the caller's) still cancels.
        using var deadline = new CancellationTokenSource(timeout, time);
        using var registration = cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), deadline);
        try
        {
            return connect is null
                ? await DefaultConnectAsync(context.DnsEndPoint, deadline.Token).ConfigureAwait(false)
                : await connect(context, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && deadline.IsCancellationRequested)
        {
            throw new TimeoutException($"The connection to the mesh endpoint {context.DnsEndPoint.Host}:{context.DnsEndPoint.Port} was not established within the connect timeout ({timeout.TotalMilliseconds:0} ms, Mesh:Resilience:ConnectTimeout).");
        }
    }

    /// <summary>
    /// The connect timeout of the service whose endpoint the connection goes to, or <see langword="null"/> when the
    /// connection is not one to a mesh endpoint. The pool may open a connection a moment after the request that asked
    /// for it was served by another one, so the endpoint is recognised by its address as well as by the request's URI.
    /// </summary>
    private TimeSpan? TimeoutOf(SocketsHttpConnectionContext context)
    {
        var request = context.InitialRequestMessage;
        if (!request.Options.TryGetValue(MeshRequestContext.Key, out var mesh)
            || mesh.AttemptUri is not { } attempt)
        {
            return null;
        }

        if (mesh.IsAttemptUri(request.RequestUri) // any of a hedged call's attempts in flight
            || (attempt.Port == context.DnsEndPoint.Port && string.Equals(attempt.IdnHost.Trim('[', ']'), context.DnsEndPoint.Host.Trim('[', ']'), StringComparison.OrdinalIgnoreCase)))
        {
            return resilience.Get(mesh.Backend).Settings.ConnectTimeout; // per connection, not per request; the endpoint's service (a route's backend)
        }

        return null;
    }

    /// <summary>What SocketsHttpHandler does without a connect callback.</summary>
    private static async ValueTask<Stream> DefaultConnectAsync(DnsEndPoint endpoint, CancellationToken cancellationToken)
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

    private static partial class Log
    {
        [LoggerMessage(210, LogLevel.Debug, "HttpClient '{Client}': its primary handler {Handler} is not a SocketsHttpHandler (or was already used), so Mesh:Resilience:ConnectTimeout cannot be applied to it; its connections use that handler's own connect timeout.", EventName = "ConnectTimeoutNotApplied")]
        public static partial void ConnectTimeoutNotApplied(ILogger logger, string client, string handler);
    }
}
