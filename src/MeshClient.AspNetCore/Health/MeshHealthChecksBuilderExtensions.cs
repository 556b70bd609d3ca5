using MeshClient.AspNetCore.Health;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the MeshClient health check.</summary>
public static class MeshHealthChecksBuilderExtensions
{
    /// <summary>
    /// Adds a health check of the services the mesh is calling: <see cref="HealthStatus.Degraded"/> while a service in
    /// use has endpoints out (ejected, unreachable, probing), <paramref name="failureStatus"/> (Unhealthy by default)
    /// while one has no healthy endpoint. The description and the data name the services and endpoints concerned.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The name of the check, <c>mesh</c> by default.</param>
    /// <param name="failureStatus">The status reported while a service has no healthy endpoint; Unhealthy when <see langword="null"/>.</param>
    /// <param name="tags">Tags to filter the check by (for example <c>ready</c>).</param>
    /// <returns>The builder, for chaining.</returns>
    public static IHealthChecksBuilder AddMesh(this IHealthChecksBuilder builder, string name = "mesh", HealthStatus? failureStatus = null, IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(name);
        return builder.AddCheck<MeshHealthCheck>(name, failureStatus, tags ?? []);
    }
}
