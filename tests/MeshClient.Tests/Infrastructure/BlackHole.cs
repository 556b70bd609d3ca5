using System.Net;
using System.Net.Sockets;

namespace MeshClient.Tests.Infrastructure;

/// <summary>
/// An address whose connection attempts go unanswered, like a node that is gone: a socket on 127.0.0.1 (port chosen
/// by the OS) listening with a backlog of 1 that never accepts, its accept queue filled by a few connections, so
/// that Linux drops further SYNs (and retransmits them for about two minutes) instead of refusing them.
/// </summary>
public sealed class BlackHole : IDisposable
{
    private readonly Socket _listener;
    private readonly List<Socket> _fillers = [];

    private BlackHole(Socket listener)
    {
        _listener = listener;
    }

    public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

    public Uri Address => new($"http://127.0.0.1:{Port}/");

    /// <summary>Creates the listener and fills its queue; fails unless a further connection attempt really hangs.</summary>
    public static async Task<BlackHole> CreateAsync()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var hole = new BlackHole(listener);
        try
        {
            for (var i = 0; i < 16; i++)
            {
                if (!await hole.TryConnectAsync(keep: true))
                {
                    // The queue is full: check that one more attempt hangs too (its SYN dropped, not refused).
                    if (await hole.TryConnectAsync(keep: false))
                    {
                        break;
                    }

                    return hole;
                }
            }
        }
        catch
        {
            hole.Dispose();
            throw;
        }

        hole.Dispose();
        throw new InvalidOperationException("Connections to a listener with a full accept queue do not hang on this system.");
    }

    /// <summary>Connects within 300 ms or gives up (<see langword="false"/>): a refusal throws.</summary>
    private async Task<bool> TryConnectAsync(bool keep)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, Port), timeout.Token);
        }
        catch (OperationCanceledException)
        {
            socket.Dispose();
            return false;
        }

        if (keep)
        {
            _fillers.Add(socket);
        }
        else
        {
            socket.Dispose();
        }

        return true;
    }

    public void Dispose()
    {
        foreach (var socket in _fillers)
        {
            socket.Dispose();
        }

        _listener.Dispose();
    }
}
