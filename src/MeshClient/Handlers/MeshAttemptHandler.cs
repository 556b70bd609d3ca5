using MeshClient.Model;
using MeshClient.Balancing;
using MeshClient.Resilience;

namespace MeshClient.Handlers;

/// <summary>
/// The innermost mesh handler: runs one attempt on one endpoint through the service's Polly attempt pipeline
/// (the attempt timeout). It sits inside the balancer, so a timed-out attempt counts against its endpoint.
/// </summary>
internal sealed class MeshAttemptHandler : PollyPipelineHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        request.Options.TryGetValue(MeshRequestContext.Key, out var mesh) && mesh.Resilience is ServiceResilience resilience
            ? SendThroughAsync(resilience.Attempt, request, call: null, cancellationToken)
            : base.SendAsync(request, cancellationToken);
}
