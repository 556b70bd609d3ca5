using Microsoft.Extensions.DependencyInjection;

namespace MeshClient;

/// <summary>
/// Returned by <c>AddMesh()</c> to chain the optional features of the mesh, for example <c>AddConsul()</c>.
/// </summary>
public interface IMeshBuilder
{
    /// <summary>Gets the service collection the mesh is registered in.</summary>
    IServiceCollection Services { get; }
}
