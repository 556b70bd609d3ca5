using Microsoft.Extensions.DependencyInjection;

namespace MeshClient;

internal sealed class MeshBuilder(IServiceCollection services, string configurationPath) : IMeshBuilder
{
    public IServiceCollection Services { get; } = services;

    /// <summary>Gets the configuration path the mesh is bound from (<c>Mesh</c> by default).</summary>
    public string ConfigurationPath { get; } = configurationPath;
}
