namespace MeshClient.Configuration;

/// <summary>
/// Which factory clients carry the mesh handlers besides <see cref="MeshOptions.ApplyToAllHttpClients"/>:
/// the clients that opted in with <c>IHttpClientBuilder.AddMesh()</c>, and the clients that must never pass
/// through the mesh (the mesh's own Consul client).
/// </summary>
internal sealed class MeshClientSelection
{
    public HashSet<string> Included { get; } = new(StringComparer.Ordinal);

    public HashSet<string> Excluded { get; } = new(StringComparer.Ordinal);
}
