namespace MeshClient.Model;

/// <summary>
/// The source of randomness of the mesh, replaceable in tests. The default draws from <see cref="Random.Shared"/>,
/// which is thread-safe, lock-free and allocation-free.
/// </summary>
internal class Randomizer
{
    public static readonly Randomizer Shared = new();

    /// <summary>Returns a value in [0, <paramref name="maxExclusive"/>).</summary>
    public virtual long NextInt64(long maxExclusive) => Random.Shared.NextInt64(maxExclusive);

    /// <summary>Returns a value in [0, 1).</summary>
    public virtual double NextDouble() => Random.Shared.NextDouble();
}
