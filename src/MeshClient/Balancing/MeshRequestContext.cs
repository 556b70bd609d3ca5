namespace MeshClient.Balancing;

/// <summary>
/// The state of one logical request across its attempts: which endpoints were tried, how many attempts were made,
/// and which endpoint served the last one. Created once per logical request by the outermost mesh handler.
/// </summary>
internal sealed class MeshRequestContext
{
    public static readonly HttpRequestOptionsKey<MeshRequestContext> Key = new("MeshClient.RequestContext");

    private EndpointState?[] _tried = new EndpointState?[4];

    public string? ServiceName { get; set; }

    public int Attempts { get; private set; }

    public int TriedCount { get; private set; }

    public EndpointEntry? LastEndpoint { get; private set; }

    public string? Policy { get; set; }

    public bool HasTried(EndpointState state)
    {
        var tried = _tried;
        for (var i = 0; i < TriedCount; i++)
        {
            if (ReferenceEquals(tried[i], state))
            {
                return true;
            }
        }

        return false;
    }

    public void OnAttempt(EndpointEntry endpoint)
    {
        Attempts++;
        LastEndpoint = endpoint;
        if (HasTried(endpoint.State))
        {
            return;
        }

        if (TriedCount == _tried.Length)
        {
            Array.Resize(ref _tried, TriedCount * 2);
        }

        _tried[TriedCount++] = endpoint.State;
    }
}
