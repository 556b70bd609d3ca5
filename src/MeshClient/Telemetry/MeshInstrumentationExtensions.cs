using MeshClient.Telemetry;

namespace OpenTelemetry.Trace
{
    /// <summary>Adds the mesh's spans to an OpenTelemetry tracer provider.</summary>
    public static class MeshTracerProviderBuilderExtensions
    {
        /// <summary>
        /// Records the mesh's spans (ActivitySource <c>MeshClient</c>). <c>AddMesh()</c> already does this for an
        /// application that enables OpenTelemetry through dependency injection; call it for a provider built by hand.
        /// </summary>
        /// <param name="builder">The tracer provider builder.</param>
        /// <returns>The same builder.</returns>
        public static TracerProviderBuilder AddMeshInstrumentation(this TracerProviderBuilder builder)
        {
            ArgumentNullException.ThrowIfNull(builder);
            return builder.AddSource(MeshTelemetry.ActivitySourceName);
        }
    }
}

namespace OpenTelemetry.Metrics
{
    /// <summary>Adds the mesh's metrics to an OpenTelemetry meter provider.</summary>
    public static class MeshMeterProviderBuilderExtensions
    {
        /// <summary>
        /// Records the mesh's metrics (Meter <c>MeshClient</c>). <c>AddMesh()</c> already does this for an
        /// application that enables OpenTelemetry through dependency injection; call it for a provider built by hand.
        /// </summary>
        /// <param name="builder">The meter provider builder.</param>
        /// <returns>The same builder.</returns>
        public static MeterProviderBuilder AddMeshInstrumentation(this MeterProviderBuilder builder)
        {
            ArgumentNullException.ThrowIfNull(builder);
            return builder.AddMeter(MeshTelemetry.MeterName);
        }
    }
}
