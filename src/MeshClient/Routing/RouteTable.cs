namespace MeshClient.Routing;

/// <summary>The compiled routes of one service, in order: the first that matches a request wins. Immutable.</summary>
/// <param name="ServiceName">The routed service.</param>
/// <param name="Routes">Its routes.</param>
internal sealed record RouteTable(string ServiceName, CompiledRoute[] Routes)
{
    /// <summary>The first route whose match holds for <paramref name="request"/>, or <see langword="null"/>.</summary>
    public CompiledRoute? Find(HttpRequestMessage request)
    {
        foreach (var route in Routes)
        {
            if (route.Match.Matches(request))
            {
                return route;
            }
        }

        return null;
    }
}
