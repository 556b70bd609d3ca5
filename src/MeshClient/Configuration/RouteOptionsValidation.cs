using System.Globalization;

namespace MeshClient.Configuration;

/// <summary>
/// The rules of <see cref="MeshServiceOptions.Routes"/>, each failure naming its key
/// (<c>Mesh:Services:catalog:Routes:1:Backends:0:Weight</c>); called by <see cref="MeshOptionsValidator"/>.
/// </summary>
/// <remarks>
/// A backend need not be declared under <c>Mesh:Services</c>: Consul, Kubernetes, the standard <c>Services</c> section
/// or an application's own provider may discover it, which only the first lookup at run time can tell. Here it must be
/// a service name (a host name the mesh would look up, not an IP address or <c>localhost</c>, which pass through), and
/// not a service that has routes of its own. A backend that no provider knows takes no share at run time (warning 120).
/// </remarks>
internal static class RouteOptionsValidation
{
    private static readonly TimeSpan MinTimeout = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan MaxTimeout = TimeSpan.FromHours(1);

    /// <summary>Checks the routes of <paramref name="serviceName"/>, naming the keys under <paramref name="prefix"/>.</summary>
    public static void Validate(List<string> failures, string prefix, string serviceName, MeshServiceOptions service, MeshOptions options)
    {
        if (service.Routes.Count > 0 && NormalizeServiceName(serviceName) is null)
        {
            failures.Add($"{prefix}:Routes: '{serviceName}' is not a name a request can address (a host name such as 'catalog'), so its routes would never be used.");
        }

        var names = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < service.Routes.Count; i++)
        {
            var key = string.Create(CultureInfo.InvariantCulture, $"{prefix}:Routes:{i}");
            var route = service.Routes[i];
            if (route is null)
            {
                failures.Add($"{key}: the route is empty; give it Backends.");
                continue;
            }

            var name = EffectiveName(route, i);
            if (route.Name is not null && (string.IsNullOrWhiteSpace(route.Name) || route.Name.Length > 100 || route.Name.Any(char.IsControl)))
            {
                failures.Add($"{key}:Name '{route.Name}' must be a short name such as 'canary' (1 to 100 characters, no control characters).");
            }
            else if (!names.TryAdd(name, i))
            {
                failures.Add(string.Create(CultureInfo.InvariantCulture, $"{key}:Name '{name}' is the name of Routes:{names[name]} too; route names are unique within a service."));
            }

            if (route.Match is { } match)
            {
                ValidateMatch(failures, $"{key}:Match", match);
            }

            if (route.Timeout is { } timeout)
            {
                MeshOptionsValidator.ValidateRange(failures, $"{key}:Timeout", timeout, MinTimeout, MaxTimeout);
            }

            FeatureOptionsValidation.ValidateHedging(failures, $"{key}:Hedging", route.Hedging);

            ValidateBackends(failures, key, serviceName, route, options);
        }
    }

    /// <summary>The name of a route: its <see cref="MeshRouteOptions.Name"/>, or its index.</summary>
    public static string EffectiveName(MeshRouteOptions route, int index) =>
        string.IsNullOrEmpty(route.Name) ? index.ToString(CultureInfo.InvariantCulture) : route.Name;

    /// <summary>
    /// The name a backend is looked up by (the host name of <c>http://{service}/</c>, lower case, as a request's host
    /// would be), or <see langword="null"/> when <paramref name="service"/> is not a service name.
    /// </summary>
    public static string? NormalizeServiceName(string? service)
    {
        if (string.IsNullOrWhiteSpace(service) || service.Trim() != service
            || !Uri.TryCreate("http://" + service + "/", UriKind.Absolute, out var uri)
            || uri.PathAndQuery != "/" || uri.UserInfo.Length != 0 || uri.Fragment.Length != 0 || !uri.IsDefaultPort
            || !string.Equals(uri.Host, service, StringComparison.OrdinalIgnoreCase)
            || uri.HostNameType != UriHostNameType.Dns || uri.IsLoopback)
        {
            return null;
        }

        return uri.IdnHost;
    }

    private static void ValidateMatch(List<string> failures, string key, MeshRouteMatchOptions match)
    {
        var pathValid = ValidatePath(failures, $"{key}:Path", match.Path);
        var prefixValid = ValidatePath(failures, $"{key}:PathPrefix", match.PathPrefix);
        if (pathValid && prefixValid && match.Path is { } path && match.PathPrefix is { } prefix && !UnderPrefix(path, prefix))
        {
            failures.Add($"{key}: Path '{path}' is not under PathPrefix '{prefix}', so the route would never match; set one of them.");
        }
        if (match.Method is { } method && !IsToken(method))
        {
            failures.Add($"{key}:Method '{method}' must be an HTTP method such as GET or POST.");
        }

        foreach (var (header, value) in match.Headers)
        {
            if (!IsToken(header))
            {
                failures.Add($"{key}:Headers: '{header}' is not a header name.");
            }
            else if (value is null || value.Any(c => char.IsControl(c) && c != '\t'))
            {
                failures.Add($"{key}:Headers:{header} must be the exact value of the header (no control characters).");
            }
        }
    }

    /// <summary>Checks a path of a match; returns whether it is valid (or not set).</summary>
    private static bool ValidatePath(List<string> failures, string key, string? path)
    {
        if (path is null)
        {
            return true;
        }

        if (!path.StartsWith('/') || path.Contains('?', StringComparison.Ordinal) || path.Contains('#', StringComparison.Ordinal)
            || path.Any(c => char.IsControl(c) || c == ' '))
        {
            failures.Add($"{key} '{path}' must be a path that begins with '/' such as '/api/items', without a query.");
            return false;
        }

        return true;
    }

    /// <summary>Whether <paramref name="path"/> lies under <paramref name="prefix"/>, element by element (as a route matches).</summary>
    public static bool UnderPrefix(string path, string prefix)
    {
        var trimmed = prefix.Length > 1 ? prefix.TrimEnd('/') : prefix;
        return trimmed is "/" or ""
            || (path.StartsWith(trimmed, StringComparison.Ordinal) && (path.Length == trimmed.Length || path[trimmed.Length] == '/'));
    }

    private static void ValidateBackends(List<string> failures, string key, string serviceName, MeshRouteOptions route, MeshOptions options)
    {
        if (route.Backends.Count == 0)
        {
            failures.Add($"{key}:Backends must name at least one service (Backends:0:Service).");
            return;
        }

        if (route.Backends.Count > MeshRouteOptions.MaxBackends)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{key}:Backends has {route.Backends.Count} backends; a route has at most {MeshRouteOptions.MaxBackends}."));
        }

        var seen = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        long sum = 0;
        var weightsValid = true;
        for (var j = 0; j < route.Backends.Count; j++)
        {
            var backendKey = string.Create(CultureInfo.InvariantCulture, $"{key}:Backends:{j}");
            var backend = route.Backends[j];
            if (backend is null)
            {
                failures.Add($"{backendKey}: the backend is empty; give it a Service.");
                weightsValid = false;
                continue;
            }

            if (backend.Weight is < 0 or > MeshRouteBackendOptions.MaxWeight)
            {
                MeshOptionsValidator.ValidateRange(failures, $"{backendKey}:Weight", backend.Weight, 0, MeshRouteBackendOptions.MaxWeight);
                weightsValid = false;
            }
            else
            {
                sum += backend.Weight;
            }

            if (string.IsNullOrWhiteSpace(backend.Service))
            {
                failures.Add($"{backendKey}:Service is required: the name of a mesh service such as 'catalog-v2'.");
                continue;
            }

            if (NormalizeServiceName(backend.Service) is not { } name)
            {
                failures.Add($"{backendKey}:Service '{backend.Service}' must be a mesh service name such as 'catalog-v2' (a host name without scheme or port; not an IP address or localhost, which pass through the mesh).");
                continue;
            }

            if (!seen.TryAdd(name, j))
            {
                failures.Add(string.Create(CultureInfo.InvariantCulture, $"{backendKey}:Service '{backend.Service}' is already Backends:{seen[name]} of this route; list it once with the sum of the weights."));
            }

            if (!string.Equals(name, serviceName, StringComparison.OrdinalIgnoreCase)
                && options.Services.TryGetValue(name, out var target) && target is { Routes.Count: > 0 })
            {
                failures.Add($"{backendKey}:Service '{backend.Service}' has routes of its own (Mesh:Services:{name}:Routes): a route's backend must be a service without routes (routes do not chain), or '{serviceName}' itself for its own endpoints.");
            }
        }

        if (weightsValid && sum == 0)
        {
            failures.Add($"{key}:Backends: the weights are all 0; at least one backend must have a positive Weight.");
        }
    }

    /// <summary>An RFC 9110 token (a method or a header name).</summary>
    private static bool IsToken(string value)
    {
        if (value.Length == 0)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (c > 0x7E || c <= 0x20 || "\"(),/:;<=>?@[\\]{}".Contains(c, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }
}
