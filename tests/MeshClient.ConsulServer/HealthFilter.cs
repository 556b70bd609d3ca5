using System.Text.RegularExpressions;

namespace MeshClient.ConsulServer;

/// <summary>
/// A small subset of go-bexpr for <c>?filter=</c> on health reads: clauses joined by <c>and</c>, each one of
/// <c>Sel == "v"</c>, <c>Sel != "v"</c>, <c>"v" in Sel</c>, <c>"v" not in Sel</c>, <c>Sel contains "v"</c>, over
/// <c>Service.Service|ID|Address|Tags|Meta.k</c> and <c>Node.Node|Address|Datacenter|Meta.k</c>. Anything else is
/// refused as Consul refuses garbage: 500 "Failed to create boolean expression evaluator".
/// </summary>
internal static partial class HealthFilter
{
    public static Func<HealthView, bool>? TryCreate(string expression, out string error)
    {
        error = string.Empty;
        var clauses = new List<Func<HealthView, bool>>();
        foreach (var part in AndPattern().Split(expression.Trim()))
        {
            var match = ClausePattern().Match(part.Trim());
            if (!match.Success)
            {
                error = $"1:1 (0): no match found, expected: \"(\", \"not\" or [A-Za-z_] in \"{part.Trim()}\"";
                return null;
            }

            string selector, op, value;
            if (match.Groups["lv"].Success)
            {
                value = match.Groups["lv"].Value;
                op = match.Groups["inop"].Value.Replace(" ", string.Empty, StringComparison.Ordinal);
                selector = match.Groups["rsel"].Value;
            }
            else
            {
                selector = match.Groups["sel"].Value;
                op = match.Groups["op"].Value;
                value = match.Groups["rv"].Value;
            }

            Func<HealthView, IReadOnlyList<string>?> read = selector switch
            {
                "Service.Service" => v => [v.Service.Name],
                "Service.ID" => v => [v.Service.Id],
                "Service.Address" => v => [v.Service.Address],
                "Service.Tags" => v => v.Service.Tags,
                "Node.Node" => v => [v.Node.Name],
                "Node.Address" => v => [v.Node.Address],
                "Node.Datacenter" => v => [v.Node.Datacenter],
                _ when selector.StartsWith("Service.Meta.", StringComparison.Ordinal) => v => v.Service.Meta?.GetValueOrDefault(selector[13..]) is { } m ? [m] : [],
                _ when selector.StartsWith("Node.Meta.", StringComparison.Ordinal) => v => v.Node.Meta.GetValueOrDefault(selector[10..]) is { } m ? [m] : [],
                _ => _ => null,
            };
            if (read(new HealthView(new("n", "i", "a", "d"), new("n", "i", "s"), [])) is null)
            {
                error = $"Selector \"{selector}\" is not valid";
                return null;
            }

            clauses.Add(op switch
            {
                "==" => v => read(v)!.Count == 1 && read(v)![0] == value,
                "!=" => v => !(read(v)!.Count == 1 && read(v)![0] == value),
                "in" or "contains" => v => read(v)!.Contains(value),
                _ => v => !read(v)!.Contains(value),
            });
        }

        return v => clauses.All(c => c(v));
    }

    [GeneratedRegex(@"\s+and\s+")]
    private static partial Regex AndPattern();

    [GeneratedRegex("""^(?:(?<sel>[A-Za-z_][A-Za-z0-9_.\-]*)\s*(?<op>==|!=|contains)\s*"(?<rv>[^"]*)"|"(?<lv>[^"]*)"\s+(?<inop>in|not\s+in)\s+(?<rsel>[A-Za-z_][A-Za-z0-9_.\-]*))$""")]
    private static partial Regex ClausePattern();
}
