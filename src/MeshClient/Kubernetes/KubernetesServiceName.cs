namespace MeshClient.Kubernetes;

/// <summary>A Kubernetes Service, by namespace and name.</summary>
internal readonly record struct KubernetesServiceName(string Namespace, string Name)
{
    public override string ToString() => Name + "." + Namespace;

    /// <summary>
    /// Maps a host to a Service the way cluster DNS does: <c>catalog</c> (the default namespace), <c>catalog.shop</c>,
    /// <c>catalog.shop.svc</c> and <c>catalog.shop.svc.{cluster domain}</c>. Any other host is not a Service.
    /// </summary>
    public static bool TryParse(string host, string defaultNamespace, string clusterDomain, out KubernetesServiceName service)
    {
        service = default;
        if (string.IsNullOrEmpty(host) || host.Length > 253 || string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var name = host.TrimEnd('.').ToLowerInvariant();
        var suffix = ".svc." + clusterDomain.ToLowerInvariant();
        if (name.EndsWith(suffix, StringComparison.Ordinal))
        {
            name = name[..^suffix.Length];
        }
        else if (name.EndsWith(".svc", StringComparison.Ordinal))
        {
            name = name[..^4];
        }

        var dot = name.IndexOf('.', StringComparison.Ordinal);
        if (dot < 0)
        {
            service = new KubernetesServiceName(defaultNamespace, name);
            return IsLabel(name);
        }

        var serviceName = name[..dot];
        var ns = name[(dot + 1)..];
        service = new KubernetesServiceName(ns, serviceName);
        return IsLabel(serviceName) && IsLabel(ns);
    }

    /// <summary>Whether <paramref name="value"/> is a DNS-1123 label (Service and namespace names are).</summary>
    public static bool IsLabel(string value)
    {
        if (value.Length is 0 or > 63 || value[0] == '-' || value[^1] == '-')
        {
            return false;
        }

        foreach (var c in value)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '-'))
            {
                return false;
            }
        }

        return true;
    }
}
