using Polly;

namespace MeshClient.Resilience;

/// <summary>The resilience of one service: its effective settings, its Polly pipelines and its retry budget.</summary>
internal sealed class ServiceResilience(
    string serviceName,
    ResilienceSettings settings,
    ResiliencePipeline<HttpResponseMessage> call,
    ResiliencePipeline<HttpResponseMessage> attempt,
    RetryBudget budget)
{
    public string ServiceName { get; } = serviceName;

    public ResilienceSettings Settings { get; } = settings;

    /// <summary>Gets the pipeline around a whole call: total timeout, then retry.</summary>
    public ResiliencePipeline<HttpResponseMessage> Call { get; } = call;

    /// <summary>Gets the pipeline around one attempt on one endpoint: the attempt timeout.</summary>
    public ResiliencePipeline<HttpResponseMessage> Attempt { get; } = attempt;

    public RetryBudget Budget { get; } = budget;
}
