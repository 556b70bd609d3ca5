namespace MeshClient.Handlers;

/// <summary>
/// Keeps Grpc.Net.Client's own connection layer off a mesh client, so that each gRPC call reaches the mesh handlers
/// as one HTTP request, is balanced on its own, and goes out on the mesh's SocketsHttpHandler (HTTP/2: h2c with prior
/// knowledge for http://, ALPN for https://).
/// </summary>
/// <remarks>
/// A <c>GrpcChannel</c> created on a handler chain (as <c>AddGrpcClient</c> creates it) looks for a
/// <see cref="SocketsHttpHandler"/> at the bottom of the chain. When it finds one without a connect callback, the
/// channel opens its own subchannel to the address it was given (<c>http://echo</c>: a DNS lookup of <c>echo</c>, which
/// fails) and installs a connect callback that hands SocketsHttpHandler that subchannel's socket, whatever host the
/// mesh rewrote the request to (<c>GrpcChannel.CalculateHandlerContext</c>, <c>BalancerHttpHandler</c>). Grpc.Net.Client
/// (2.58 and later) leaves a handler alone whose <see cref="SocketsHttpHandler.Properties"/> carry this key set to
/// <see langword="true"/>; its channel then sends each call down the chain unchanged, as it does over an HttpClient.
/// Mesh clients get the key whether they are gRPC clients or not (an entry in a property bag, read by nobody else): the
/// mesh does not reference Grpc.Net.Client and cannot tell which clients a channel will be built on.
/// </remarks>
internal static class GrpcSubchannels
{
    /// <summary>The property Grpc.Net.Client reads (<c>GrpcChannel.CalculateHandlerContext</c>).</summary>
    internal const string DisabledKey = "__GrpcLoadBalancingDisabled";

    /// <summary>Turns Grpc.Net.Client's subchannels off for a mesh client's primary handler.</summary>
    public static void TurnOff(HttpMessageHandler primary)
    {
        if (primary is SocketsHttpHandler sockets)
        {
            sockets.Properties[DisabledKey] = true;
        }
    }
}
