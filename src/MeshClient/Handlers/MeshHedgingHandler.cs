using MeshClient.Hedging;
using MeshClient.Model;
using MeshClient.Resilience;

namespace MeshClient.Handlers;

/// <summary>
/// The mesh's step between the retry loop (<see cref="MeshRetryHandler"/>) and the balancer
/// (<see cref="MeshBalancingHandler"/>): runs one try of a call as a hedged race (a <see cref="HedgedTry"/> per try)
/// when its service hedges and the request may be sent twice at once (<see cref="HedgingRegistry.For"/>); every other
/// try goes straight to the balancer (one volatile read when no service hedges, and no state machine of its own). Each
/// attempt of a race goes through the balancer, which picks its endpoint, under a timeout of its own
/// (<see cref="CallTimeout.ForAttempt"/>): one attempt's timeout ends that attempt, not its race.
/// </summary>
internal sealed class MeshHedgingHandler(HedgingRegistry hedging, MeshBalancingHandler balancing)
{
    /// <summary>Sends one try of <paramref name="call"/>: hedged, or as one attempt.</summary>
    /// <param name="outer">The mesh's handler, whose inner handler sends.</param>
    /// <param name="call">The call.</param>
    /// <param name="timeout">The call's timeouts (its token cancels the try).</param>
    /// <param name="request">The request, with the caller's URI.</param>
    public ValueTask<HttpResponseMessage> SendAsync(MeshCallHandler outer, MeshRequestContext call, CallTimeout timeout, HttpRequestMessage request) =>
        hedging.AnyEnabled && hedging.For(call, request) is { } policy
            ? new ValueTask<HttpResponseMessage>(HedgedTry.SendAsync(policy, request, call, new HedgedAttempts(balancing, outer, call, timeout).SendAsync, timeout.Token))
            : balancing.SendAsync(outer, call, timeout, request);

    /// <summary>Sends the attempts of one hedged try through the balancer, each under its own attempt timeout.</summary>
    private sealed class HedgedAttempts(MeshBalancingHandler balancing, MeshCallHandler outer, MeshRequestContext call, CallTimeout timeout)
    {
        public async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var attempt = timeout.ForAttempt(cancellationToken);
            try
            {
                return await balancing.SendAsync(outer, call, attempt, request).ConfigureAwait(false);
            }
            finally
            {
                attempt.Return();
            }
        }
    }
}
