using MeshClient.Configuration;
using MeshClient.Discovery;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Tests.DependencyInjection;

/// <summary>What <c>AddMesh()</c> registers, and that it may be called more than once.</summary>
public sealed class AddMeshTests
{
    [Fact]
    public void TheMeshProvider_GoesFirst_EvenAfterAddServiceDiscovery()
    {
        var services = new ServiceCollection();
        services.AddServiceDiscovery();
        services.AddMesh();
        var first = services.First(d => d.ServiceType == typeof(IServiceEndpointProviderFactory));
        Assert.Equal(typeof(MeshConfigurationEndpointProviderFactory), first.ImplementationType);
    }

    [Fact]
    public void AddMeshTwice_RegistersOnce_AndKeepsTheFirstSection()
    {
        var services = new ServiceCollection();
        var section = new ConfigurationBuilder().AddInMemoryCollection().Build().GetSection("Edge:Mesh");
        var first = services.AddMesh(section);
        var again = services.AddMesh();
        Assert.Equal(MeshBuilder.SectionOf(first), MeshBuilder.SectionOf(again));
        Assert.Equal("Edge:Mesh", MeshBuilder.SectionOf(again));
        Assert.Single(services, d => d.ServiceType == typeof(IHttpMessageHandlerBuilderFilter) && d.ImplementationType?.Name == "MeshHttpMessageHandlerBuilderFilter");
        Assert.Single(services, d => d.ImplementationType == typeof(MeshConfigurationEndpointProviderFactory));
    }
}
