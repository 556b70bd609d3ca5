namespace MeshClient.Balancing;

/// <summary>What discovery said about a host.</summary>
internal enum ServiceResolution
{
    /// <summary>Not resolved yet.</summary>
    Pending,

    /// <summary>A provider knows the service: requests are balanced over its endpoints.</summary>
    Known,

    /// <summary>No provider knows the host.</summary>
    Unknown,

    /// <summary>The providers failed before any answer was known.</summary>
    Failed,
}
