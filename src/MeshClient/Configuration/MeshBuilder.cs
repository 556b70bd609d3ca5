using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Configuration;

/// <summary>The builder <c>AddMesh()</c> returns: the service collection and the section the mesh is bound from.</summary>
internal sealed class MeshBuilder(IServiceCollection services, string configurationPath) : IMeshBuilder
{
    /// <summary>The configuration section the mesh is bound from by default.</summary>
    public const string DefaultSectionName = "Mesh";

    public IServiceCollection Services { get; } = services;

    /// <summary>Gets the configuration path the mesh is bound from (<c>Mesh</c> by default).</summary>
    public string ConfigurationPath { get; } = configurationPath;

    /// <summary>The section of the mesh that <paramref name="builder"/> adds to.</summary>
    /// <param name="builder">A builder returned by <c>AddMesh()</c> (or the application's own).</param>
    public static string SectionOf(IMeshBuilder builder) => builder is MeshBuilder mesh ? mesh.ConfigurationPath : DefaultSectionName;
}
