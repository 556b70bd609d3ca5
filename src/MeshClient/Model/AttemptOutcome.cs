namespace MeshClient.Model;

/// <summary>How one attempt on one endpoint ended, as the balancer and outlier detection see it.</summary>
internal enum AttemptOutcome
{
    /// <summary>A response below 500 (other than 429).</summary>
    Success,

    /// <summary>A 5xx response, a connection failure or an attempt timeout: counts against the endpoint.</summary>
    Failure,

    /// <summary>The connection could not be established (refused, unreachable, unresolvable): nothing was sent.</summary>
    Unreachable,

    /// <summary>429: the endpoint is overloaded. Penalised in latency, not counted as an outlier failure.</summary>
    Overloaded,

    /// <summary>The caller cancelled: says nothing about the endpoint.</summary>
    Cancelled,

    /// <summary>
    /// The attempt failed on our side before the endpoint could answer (a body that cannot be read again, a disposed
    /// one): says nothing about the endpoint, and is charged to nothing.
    /// </summary>
    Local,
}
