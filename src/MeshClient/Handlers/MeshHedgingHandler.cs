using MeshClient.Hedging;
using MeshClient.Model;

namespace MeshClient.Handlers;

/// <summary>
/// Between the retry loop and the balancer: runs one try of a call as a hedged race (<see cref="HedgedTry"/>) when its
/// service hedges and the request may be sent twice at once (<see cref="HedgingRegistry.For"/>); every other try
/// passes straight through (one volatile read when no service hedges). Each attempt of the race goes through the
/// balancer below, which picks its endpoint.
/// </summary>
internal sealed class MeshHedgingHandler : DelegatingHandler
{
    private readonly HedgingRegistry _hedging;
    private readonly Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> _sendAttempt;

    public MeshHedgingHandler(HedgingRegistry hedging)
    {
        _hedging = hedging;
        _sendAttempt = SendAttemptAsync;
    }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        _hedging.AnyEnabled && request.Options.TryGetValue(MeshRequestContext.Key, out var call) && _hedging.For(call, request) is { } policy
            ? HedgedTry.SendAsync(policy, request, call, _sendAttempt, cancellationToken)
            : base.SendAsync(request, cancellationToken);

    private Task<HttpResponseMessage> SendAttemptAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        base.SendAsync(request, cancellationToken);
}
