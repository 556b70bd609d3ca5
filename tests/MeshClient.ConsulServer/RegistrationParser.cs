using System.Globalization;
using System.Text.Json;

namespace MeshClient.ConsulServer;

/// <summary>
/// Reads a <c>ServiceDefinition</c> body as the agent does: field names case-insensitive, snake_case accepted
/// (<c>deregister_critical_service_after</c>), durations as Go strings or numbers of nanoseconds.
/// </summary>
internal static class RegistrationParser
{
    public static ServiceDefinition Parse(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new JsonException($"json: cannot unmarshal {Kind(root)} into Go value of type structs.ServiceDefinition");
        }

        var definition = new ServiceDefinition
        {
            Id = GetString(root, "ID"),
            Name = GetString(root, "Name") ?? string.Empty,
            Address = GetString(root, "Address"),
            Port = GetInt(root, "Port") ?? 0,
            EnableTagOverride = Get(root, "EnableTagOverride") is { ValueKind: JsonValueKind.True },
            Kind = GetString(root, "Kind") ?? string.Empty,
        };
        if (Get(root, "Tags") is { ValueKind: JsonValueKind.Array } tags)
        {
            definition.Tags = [.. tags.EnumerateArray().Select(t => t.GetString() ?? string.Empty)];
        }

        if (Get(root, "Meta") is { ValueKind: JsonValueKind.Object } meta)
        {
            definition.Meta = meta.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? string.Empty, StringComparer.Ordinal);
        }

        if (Get(root, "Weights") is { ValueKind: JsonValueKind.Object } weights)
        {
            definition.WeightPassing = GetInt(weights, "Passing") ?? 0;
            definition.WeightWarning = GetInt(weights, "Warning") ?? 0;
        }

        if (Get(root, "TaggedAddresses") is { ValueKind: JsonValueKind.Object } tagged)
        {
            foreach (var property in tagged.EnumerateObject())
            {
                definition.TaggedAddresses[property.Name] = (GetString(property.Value, "Address") ?? string.Empty, GetInt(property.Value, "Port") ?? 0);
            }
        }

        if (Get(root, "Check") is { ValueKind: JsonValueKind.Object } check)
        {
            definition.Checks.Add(ParseCheck(check));
        }

        if (Get(root, "Checks") is { ValueKind: JsonValueKind.Array } checks)
        {
            definition.Checks.AddRange(checks.EnumerateArray().Select(ParseCheck));
        }

        return definition;
    }

    private static CheckDefinition ParseCheck(JsonElement check)
    {
        var definition = new CheckDefinition
        {
            CheckId = GetString(check, "CheckID") ?? GetString(check, "ID"),
            Name = GetString(check, "Name"),
            Http = GetString(check, "HTTP"),
            Method = GetString(check, "Method") is { Length: > 0 } method ? method : "GET",
            Interval = GetDuration(check, "Interval") ?? TimeSpan.Zero,
            Timeout = GetDuration(check, "Timeout") ?? TimeSpan.FromSeconds(10),
            Ttl = GetDuration(check, "TTL") ?? TimeSpan.Zero,
            Status = GetString(check, "Status") is { Length: > 0 } status ? status : null,
            Notes = GetString(check, "Notes") ?? string.Empty,
            DeregisterCriticalServiceAfter = GetDuration(check, "DeregisterCriticalServiceAfter"),
        };
        if (Get(check, "Args") is { ValueKind: JsonValueKind.Array } || Get(check, "ScriptArgs") is { ValueKind: JsonValueKind.Array })
        {
            definition.OtherType = "script";
        }
        else if (GetString(check, "TCP") is not null)
        {
            definition.OtherType = "tcp";
        }
        else if (GetString(check, "GRPC") is not null)
        {
            definition.OtherType = "grpc";
        }

        return definition;
    }

    public static JsonElement? Get(JsonElement obj, string name)
    {
        if (obj.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        var wanted = Normalize(name);
        foreach (var property in obj.EnumerateObject())
        {
            if (Normalize(property.Name) == wanted)
            {
                return property.Value;
            }
        }

        return null;
    }

    public static string? GetString(JsonElement obj, string name) => Get(obj, name) switch
    {
        { ValueKind: JsonValueKind.String } value => value.GetString(),
        null or { ValueKind: JsonValueKind.Null } => null,
        { } other => throw new JsonException($"json: cannot unmarshal {Kind(other)} into Go struct field .{name} of type string"),
    };

    private static int? GetInt(JsonElement obj, string name) => Get(obj, name) switch
    {
        { ValueKind: JsonValueKind.Number } value when value.TryGetInt32(out var i) => i,
        null or { ValueKind: JsonValueKind.Null } => null,
        { } other => throw new JsonException($"json: cannot unmarshal {Kind(other)} into Go struct field .{name} of type int"),
    };

    private static TimeSpan? GetDuration(JsonElement obj, string name)
    {
        switch (Get(obj, name))
        {
            case null or { ValueKind: JsonValueKind.Null }:
                return null;
            case { ValueKind: JsonValueKind.Number } number:
                return TimeSpan.FromTicks(number.GetInt64() / 100);
            case { ValueKind: JsonValueKind.String } text:
                var s = text.GetString();
                if (string.IsNullOrEmpty(s))
                {
                    return null;
                }

                return GoDuration.TryParse(s, out var value)
                    ? value
                    : throw new FormatException(string.Create(CultureInfo.InvariantCulture, $"time: invalid duration \"{s}\""));
            default:
                throw new JsonException($"json: cannot unmarshal into Go struct field .{name} of type time.Duration");
        }
    }

    private static string Normalize(string name) => name.Replace("_", string.Empty, StringComparison.Ordinal).ToUpperInvariant();

    private static string Kind(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Array => "array",
        JsonValueKind.Object => "object",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "bool",
        _ => "null",
    };
}
