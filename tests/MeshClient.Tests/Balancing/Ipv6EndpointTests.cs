using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using MeshClient.ConsulServer;
using MeshClient.Tests.Consul;
using MeshClient.Tests.Infrastructure;

namespace MeshClient.Tests.Balancing;

/// <summary>
/// Real Kestrel backends on IPv6 addresses, called through the mesh by service name: the rewritten request URI is
/// bracketed, keeps its port, and keeps a link-local address's zone id (without it the connection has no interface).
/// </summary>
public sealed class Ipv6EndpointTests
{
    [Ipv6LoopbackFact]
    public async Task ConfigurationEndpoint_OnIpv6Loopback_IsCalledThroughTheMesh()
    {
        await using var backend = await TestBackend.StartAsync("v6", bindTo: IPAddress.IPv6Loopback);
        await using var host = MeshHost.Create(new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Endpoints:0:Address"] = $"http://[::1]:{backend.Port}/base",
        });
        var client = host.CreateClient();
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal("v6", await client.GetStringAsync("http://catalog/items?id=" + i));
        }

        Assert.Equal(5, backend.Count);
        Assert.All(backend.Requests, r => Assert.Equal($"[::1]:{backend.Port}", r.Host));
        Assert.Contains(backend.Requests, r => r.PathAndQuery == "/base/items?id=4");
    }

    [Ipv6LoopbackFact]
    public async Task ConsulInstance_WithAnUnbracketedIpv6Address_IsCalledThroughTheMesh()
    {
        await using var backend = await TestBackend.StartAsync("v6", bindTo: IPAddress.IPv6Loopback);
        await using var consul = await ConsulTestServer.StartAsync();
        var instance = Consul.Services.On(backend, "web");
        instance.Address = "::1";
        consul.Register(instance);
        await using var mesh = ConsulTestHost.Create(consul);
        var client = mesh.CreateClient();
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal("v6", await client.GetStringAsync("http://web/x"));
        }

        Assert.Equal(5, backend.Count);
    }

    [Ipv6LinkLocalFact]
    public async Task LinkLocalEndpoint_KeepsItsZoneId_ThroughToTheConnection()
    {
        var address = Ipv6LinkLocalFactAttribute.Find()!;
        await using var backend = await TestBackend.StartAsync("link-local", bindTo: address);

        // IPAddress prints the zone as the interface index: http://[fe80::…%2]:port.
        await using var host = MeshHost.Create(new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Endpoints:0:Address"] = $"http://[{address}]:{backend.Port}",
        });
        var client = host.CreateClient();
        Assert.Equal("link-local", await client.GetStringAsync("http://catalog/"));
        Assert.Equal(1, backend.Count);
    }
}

/// <summary>A fact that runs only where a socket can listen on [::1].</summary>
public sealed class Ipv6LoopbackFactAttribute : FactAttribute
{
    public Ipv6LoopbackFactAttribute()
    {
        if (!Ipv6Probe.CanListen(IPAddress.IPv6Loopback, out var reason))
        {
            Skip = "IPv6 loopback ([::1]) cannot be listened on here: " + reason;
        }
    }
}

/// <summary>A fact that runs only where an interface that is up has a link-local IPv6 address a socket can listen on.</summary>
public sealed class Ipv6LinkLocalFactAttribute : FactAttribute
{
    public Ipv6LinkLocalFactAttribute()
    {
        if (Find() is null)
        {
            Skip = "No interface here has a link-local IPv6 address (fe80::/10) that can be listened on.";
        }
    }

    public static IPAddress? Find()
    {
        try
        {
            return NetworkInterface.GetAllNetworkInterfaces()
                .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
                .SelectMany(n => n.GetIPProperties().UnicastAddresses)
                .Select(u => u.Address)
                .FirstOrDefault(a => a.IsIPv6LinkLocal && a.ScopeId != 0 && Ipv6Probe.CanListen(a, out _));
        }
        catch (NetworkInformationException)
        {
            return null;
        }
    }
}

internal static class Ipv6Probe
{
    public static bool CanListen(IPAddress address, out string reason)
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(address, 0));
            socket.Listen();
            reason = string.Empty;
            return true;
        }
        catch (SocketException ex)
        {
            reason = ex.SocketErrorCode.ToString();
            return false;
        }
    }
}
