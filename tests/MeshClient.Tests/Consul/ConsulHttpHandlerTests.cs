using MeshClient.Consul;
using MeshClient.ConsulServer;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http;

namespace MeshClient.Tests.Consul;

/// <summary>The Consul client's own handler: built once (infinite lifetime), disposed with the host.</summary>
public sealed class ConsulHttpHandlerTests
{
    [Fact]
    public async Task TheConsulClientsHandler_IsDisposedWithTheHost_AndItsConnectionsClosed()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var consul = await ConsulTestServer.StartAsync();
        consul.Register(Services.On(a, "web"));
        var mesh = ConsulTestHost.Create(consul);
        Assert.Equal("a", await mesh.CreateClient().GetStringAsync("http://web/"));

        // While the watch's blocking query holds one connection, a plain read opens another, which then waits idle
        // in the pool: the connection a disposed host must not leave behind.
        var consulClient = mesh.Services.GetRequiredService<IHttpClientFactory>().CreateClient(ConsulClient.HttpClientName);
        (await consulClient.GetAsync(new Uri(consul.Address, "/v1/health/service/web"))).Dispose();
        await Eventually.TrueAsync(() => consul.OpenConnections >= 2, TimeSpan.FromSeconds(5), "a blocking query and an idle connection");
        var filter = mesh.Services.GetServices<IHttpMessageHandlerBuilderFilter>().OfType<ConsulHttpMessageHandlerBuilderFilter>().Single();
        var handler = Assert.Single(filter.Handlers);

        await mesh.DisposeAsync();

        // The factory never disposes a handler with an infinite lifetime: before, the idle connection to the agent
        // stayed open (for PooledConnectionIdleTimeout, 90 s) after the host was gone, and the handler still sent.
        await Eventually.TrueAsync(() => consul.OpenConnections == 0, TimeSpan.FromSeconds(5), "the connections to Consul are closed with the host");
        using var invoker = new HttpMessageInvoker(handler, disposeHandler: false);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, new Uri(consul.Address, "/v1/health/service/web")), CancellationToken.None));
        Assert.Empty(filter.Handlers);
    }
}
