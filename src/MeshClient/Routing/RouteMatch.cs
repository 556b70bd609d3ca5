using System.Net.Http.Headers;
using MeshClient.Configuration;

namespace MeshClient.Routing;

/// <summary>
/// The compiled conditions of a route (<see cref="MeshRouteMatchOptions"/>): method, exact path or path prefix (element
/// by element, as Gateway API's <c>PathPrefix</c>), and exact header values. Immutable; a test allocates nothing
/// beyond what the request itself caches (its URI's path, read once).
/// </summary>
internal sealed class RouteMatch
{
    /// <summary>The match of a route without <c>Match</c>: every request.</summary>
    public static readonly RouteMatch All = new(null, null, null, []);

    private readonly HttpMethod? _method;
    private readonly string? _path;
    private readonly string? _prefix;
    private readonly (string Name, string Value)[] _headers;

    private RouteMatch(HttpMethod? method, string? path, string? prefix, (string Name, string Value)[] headers)
    {
        _method = method;
        _path = path;
        _prefix = prefix;
        _headers = headers;
    }

    /// <summary>Compiles validated options (<see cref="RouteOptionsValidation"/>).</summary>
    public static RouteMatch Create(MeshRouteMatchOptions? options)
    {
        if (options is null || (options.Method is null && options.Path is null && options.PathPrefix is null && options.Headers.Count == 0))
        {
            return All;
        }

        // "/api/" and "/api" are the same prefix; "/" is every path.
        var prefix = options.PathPrefix is { Length: > 1 } p ? p.TrimEnd('/') : options.PathPrefix;
        return new RouteMatch(
            options.Method is { } method ? HttpMethod.Parse(method) : null,
            options.Path,
            prefix is "/" or "" ? null : prefix,
            [.. options.Headers.Select(h => (h.Key, h.Value))]);
    }

    /// <summary>Says, in a few words, what the route takes (the status page), or <see langword="null"/> for every request.</summary>
    public string? Describe()
    {
        var parts = new List<string>();
        if (_method is not null)
        {
            parts.Add(_method.Method);
        }

        if (_path is not null)
        {
            parts.Add("path " + _path);
        }

        if (_prefix is not null)
        {
            parts.Add("path prefix " + _prefix);
        }

        parts.AddRange(_headers.Select(h => $"{h.Name}: {h.Value}"));
        return parts.Count == 0 ? null : string.Join(", ", parts);
    }

    /// <summary>Whether the request meets every condition.</summary>
    public bool Matches(HttpRequestMessage request)
    {
        if (_method is not null && request.Method != _method)
        {
            return false;
        }

        if ((_path is not null || _prefix is not null) && !PathMatches(request.RequestUri!.AbsolutePath))
        {
            return false;
        }

        foreach (var (name, value) in _headers)
        {
            if (!HasHeader(request, name, value))
            {
                return false;
            }
        }

        return true;
    }

    private bool PathMatches(string path)
    {
        if (_path is not null && !string.Equals(path, _path, StringComparison.Ordinal))
        {
            return false;
        }

        if (_prefix is null)
        {
            return true;
        }

        // Element by element: "/api" takes "/api" and "/api/items", not "/apis".
        return RouteOptionsValidation.UnderPrefix(path, _prefix);
    }

    private static bool HasHeader(HttpRequestMessage request, string name, string value) =>
        HasValue(request.Headers.NonValidated, name, value)
        || (request.Content is { } content && HasValue(content.Headers.NonValidated, name, value));

    /// <summary>Reads the header's values as they were set (no parsing, no allocation for a header set once).</summary>
    private static bool HasValue(HttpHeadersNonValidated headers, string name, string value)
    {
        if (!headers.TryGetValues(name, out var values))
        {
            return false;
        }

        foreach (var candidate in values)
        {
            if (string.Equals(candidate, value, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }
}
