using MeshClient;
using MeshClient.AspNetCore.Deadlines;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Adds the MeshClient deadline middleware.</summary>
public static class MeshDeadlineApplicationBuilderExtensions
{
    /// <summary>
    /// Makes each incoming request's deadline — its <c>grpc-timeout</c> header, or <c>mesh-timeout</c>
    /// (<see cref="MeshDeadline.HeaderName"/>, the same format, for HTTP), the shorter when both are sent — current
    /// (<see cref="MeshDeadline.Current"/>) while the request is handled: every mesh call made for it then gets at most the
    /// time left as its total timeout, sends the time left on, and fails at once, unsent, when none is left. A request
    /// without either header is handled as before. Call it early (before routing), since the deadline counts from here.
    /// </summary>
    /// <remarks>
    /// The clock is the application's <see cref="TimeProvider"/> service (the mesh's), else <see cref="TimeProvider.System"/>.
    /// It does not need <c>AddMesh()</c>: a service that calls nobody can still read <see cref="MeshDeadline.Current"/>.
    /// </remarks>
    /// <param name="app">The application builder.</param>
    /// <returns>The application builder.</returns>
    public static IApplicationBuilder UseMeshDeadlines(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var time = app.ApplicationServices.GetService<TimeProvider>() ?? TimeProvider.System;
        return app.Use(next => new MeshDeadlineMiddleware(next, time).InvokeAsync);
    }
}
