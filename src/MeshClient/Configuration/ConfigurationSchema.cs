using Microsoft.Extensions.Configuration;

namespace MeshClient.Configuration;

/// <summary>
/// The shape of a configuration section: the keys a section may hold, so that a key nobody reads (a typo such as
/// <c>Mesh:Services:catalog:LoadBalancr</c>) is refused instead of leaving the default in force without a word.
/// </summary>
/// <remarks>
/// The configuration binder's <c>ErrorOnUnknownConfiguration</c> would stop at the first unknown key and name only the
/// property, not the key's path; and it cannot tell a section bound by another builder (<c>Mesh:Consul</c>) from a
/// typo. This walks the whole section and names every unknown key with its full path, as configuration spells it.
/// </remarks>
internal sealed class ConfigurationSchema
{
    private readonly Dictionary<string, ConfigurationSchema>? _properties;
    private readonly ConfigurationSchema? _item;

    private ConfigurationSchema(Dictionary<string, ConfigurationSchema>? properties, ConfigurationSchema? item)
    {
        _properties = properties;
        _item = item;
    }

    /// <summary>Gets the schema of a value: a key with no children.</summary>
    public static ConfigurationSchema Value { get; } = new(null, null);

    /// <summary>A section with named keys (an options class).</summary>
    public static ConfigurationSchema Object(params (string Name, ConfigurationSchema Schema)[] properties) =>
        new(properties.ToDictionary(p => p.Name, p => p.Schema, StringComparer.OrdinalIgnoreCase), null);

    /// <summary>A section whose children may have any key, each of the given shape (a dictionary or a list).</summary>
    public static ConfigurationSchema Collection(ConfigurationSchema item) => new(null, item);

    /// <summary>Gets the names of the keys of an object section (tests).</summary>
    internal IEnumerable<string> PropertyNames => _properties?.Keys ?? Enumerable.Empty<string>();

    /// <summary>Returns the schema of the named key of an object section, or <see langword="null"/>.</summary>
    internal ConfigurationSchema? Property(string name) => _properties?.GetValueOrDefault(name);

    /// <summary>Returns a copy of this object schema with more keys (sections of other builders).</summary>
    public ConfigurationSchema With(IEnumerable<(string Name, ConfigurationSchema Schema)> more)
    {
        var properties = new Dictionary<string, ConfigurationSchema>(_properties ?? [], StringComparer.OrdinalIgnoreCase);
        foreach (var (name, schema) in more)
        {
            properties[name] = schema;
        }

        return new(properties, null);
    }

    /// <summary>Adds the full path of every key of <paramref name="section"/> that this schema does not know.</summary>
    public void FindUnknownKeys(IConfiguration section, List<string> unknown)
    {
        foreach (var child in section.GetChildren())
        {
            var schema = _item ?? _properties?.GetValueOrDefault(child.Key);
            if (schema is null)
            {
                unknown.Add(Describe(child));
                continue;
            }

            schema.FindUnknownKeys(child, unknown);
        }
    }

    /// <summary>Says that <paramref name="child"/> is not a key of this section, with the key it probably meant.</summary>
    internal string Describe(IConfigurationSection child)
    {
        var message = $"{child.Path} is not a configuration key";
        if (_properties is null || _properties.Count == 0)
        {
            return message + " (this key takes a value, not a section).";
        }

        var closest = _properties.Keys
            .Select(name => (Name: name, Distance: Distance(name, child.Key)))
            .OrderBy(c => c.Distance)
            .ThenBy(c => c.Name, StringComparer.Ordinal)
            .First();
        return closest.Distance <= Math.Max(3, child.Key.Length / 3)
            ? $"{message}; did you mean {closest.Name}?"
            : $"{message}; the keys here are {string.Join(", ", _properties.Keys.Order(StringComparer.Ordinal))}.";
    }

    /// <summary>Levenshtein distance, ignoring case: enough to name the key a typo meant.</summary>
    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = char.ToUpperInvariant(a[i - 1]) == char.ToUpperInvariant(b[j - 1]) ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}

/// <summary>
/// A section under <c>Mesh</c> bound by another builder (<c>AddConsul()</c> binds <c>Mesh:Consul</c>), registered by
/// that builder so that its keys are checked with the mesh's.
/// </summary>
internal sealed record MeshConfigurationSubsection(string Name, ConfigurationSchema Schema);
