namespace MeshClient.Configuration;

/// <summary>
/// Deadline propagation, bound from <c>Mesh:Deadlines</c> (every service) and <c>Mesh:Services:{name}:Deadlines</c> (calls
/// to one service; a value left unset takes the global one). While a deadline is current (<see cref="MeshDeadline"/>: an
/// incoming request's, made current by <c>app.UseMeshDeadlines()</c>, or one a job began), a mesh call gets at most the
/// time left as its total timeout, sends that time on (<c>grpc-timeout</c> for gRPC when shorter than the call's own,
/// <see cref="MeshDeadline.HeaderName"/> for HTTP), is not retried once it has passed, and fails at once, without being
/// sent, when none is left.
/// </summary>
public sealed class MeshDeadlineOptions
{
    /// <summary>
    /// Gets or sets a value indicating whether calls honour and send on the current deadline. Default:
    /// <see langword="true"/>. Off, a call ignores it (its own <c>grpc-timeout</c> and the service's timeouts still apply).
    /// </summary>
    public bool? Propagate { get; set; }
}
