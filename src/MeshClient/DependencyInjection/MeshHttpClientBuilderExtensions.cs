
using MeshClient.Configuration;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Opts one factory client into the mesh.</summary>
public static class MeshHttpClientBuilderExtensions
{
    /// <summary>
    /// Makes this client mesh-enabled when <c>MeshOptions.ApplyToAllHttpClients</c> is <see langword="false"/>
    /// (with the default <see langword="true"/>, every client already is). Adds the mesh with its default
    /// configuration if <c>AddMesh()</c> was not called.
    /// </summary>
    /// <param name="builder">The client builder.</param>
    /// <returns>The same builder.</returns>
    public static IHttpClientBuilder AddMesh(this IHttpClientBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddMesh();
        builder.Services.Configure<MeshClientSelection>(s => s.Included.Add(builder.Name));
        return builder;
    }
}
