using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace MeshClient.Consul;

/// <summary>
/// The host's primary address, for self-registration of a service that listens on a wildcard (<c>0.0.0.0</c>,
/// <c>[::]</c>, <c>*</c>, <c>+</c>) or a host name: the one address that is then registered as the service's address
/// and probed by its HTTP check, so that the traffic Consul sends and the check it runs reach the same place.
/// </summary>
internal static class HostAddress
{
    // Documentation addresses (RFC 5737, RFC 3849) outside any local network: routed by the default route. A UDP socket
    // "connected" to one sends nothing; its local address is the one the host uses to reach other networks.
    private static readonly IPEndPoint[] Probes = [new(IPAddress.Parse("203.0.113.1"), 9), new(IPAddress.Parse("2001:db8::1"), 9)];

    /// <summary>
    /// Gets the local address of the default route (IPv4, then IPv6), else the first non-loopback, non-link-local
    /// address of an interface that is up, else <see langword="null"/> (the host has no such address).
    /// </summary>
    public static IPAddress? Primary()
    {
        foreach (var probe in Probes)
        {
            try
            {
                using var socket = new Socket(probe.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
                socket.Connect(probe);
                if (socket.LocalEndPoint is IPEndPoint { Address: var local } && IsUsable(local))
                {
                    return local;
                }
            }
            catch (SocketException)
            {
                // No route of that family: try the next, then the interfaces.
            }
        }

        try
        {
            IPAddress? v6 = null;
            foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
            {
                if (nic.OperationalStatus != OperationalStatus.Up || nic.NetworkInterfaceType == NetworkInterfaceType.Loopback)
                {
                    continue;
                }

                foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
                {
                    var address = unicast.Address;
                    if (!IsUsable(address))
                    {
                        continue;
                    }

                    if (address.AddressFamily == AddressFamily.InterNetwork)
                    {
                        return address;
                    }

                    v6 ??= address;
                }
            }

            return v6;
        }
        catch (NetworkInformationException)
        {
            return null;
        }
    }

    private static bool IsUsable(IPAddress address) =>
        !IPAddress.IsLoopback(address)
        && !address.Equals(IPAddress.Any) && !address.Equals(IPAddress.IPv6Any)
        && !address.IsIPv6LinkLocal
        && !(address.AddressFamily == AddressFamily.InterNetwork && address.GetAddressBytes() is [169, 254, ..]);
}
