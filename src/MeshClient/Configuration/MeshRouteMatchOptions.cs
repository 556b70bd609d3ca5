namespace MeshClient.Configuration;

/// <summary>
/// The conditions of a route, bound from <c>Mesh:Services:{name}:Routes:{i}:Match</c>. Every condition that is set
/// must hold; one that is not set holds for every request.
/// </summary>
public sealed class MeshRouteMatchOptions
{
    /// <summary>
    /// Gets or sets a path prefix, matched element by element (Gateway API's <c>PathPrefix</c>): <c>/api</c> matches
    /// <c>/api</c> and <c>/api/items</c>, not <c>/apis</c>. Case-sensitive, on the escaped path; must begin with '/'.
    /// </summary>
    public string? PathPrefix { get; set; }

    /// <summary>Gets or sets an exact path (case-sensitive, on the escaped path, without the query); must begin with '/'.</summary>
    public string? Path { get; set; }

    /// <summary>Gets or sets an HTTP method (<c>GET</c>, <c>POST</c>, …), compared without regard to case.</summary>
    public string? Method { get; set; }

    /// <summary>
    /// Gets the request headers that must be present with exactly these values (the name without regard to case, the
    /// value case-sensitive; a header with several values matches when one of them is equal).
    /// </summary>
    public IDictionary<string, string> Headers { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
}
