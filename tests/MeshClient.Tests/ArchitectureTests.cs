using System.Reflection;
using MeshClient.Configuration;
using NetArchTest.Rules;

namespace MeshClient.Tests;

/// <summary>
/// DESIGN.md's "Dependencies run one way", held on the compiled assembly with NetArchTest (type references in the IL,
/// compiler-generated state machines and lambdas included): each folder of src/MeshClient may name types of the
/// folders listed for it and of no other, the list itself has no circle, and every namespace belongs to a listed
/// folder (a new folder must say where it sits).
/// </summary>
public sealed class ArchitectureTests
{
    private const string Root = "(root)";
    private const string DependencyInjection = "DependencyInjection";

    /// <summary>
    /// The arrows: folder → the folders it may import. The root holds the public vocabulary (exceptions,
    /// <c>IMeshBuilder</c>) and imports nothing; Model and Configuration are the shared leaves; Telemetry is a leaf.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string[]> Allowed = new Dictionary<string, string[]>
    {
        [Root] = [],
        ["Model"] = [Root],
        ["Configuration"] = [Root],
        ["Telemetry"] = [Root, "Model"],
        ["Discovery"] = [Root, "Model", "Configuration", "Telemetry"],
        ["Security"] = [Root, "Model", "Configuration", "Telemetry"],
        ["Consul"] = [Root, "Model", "Configuration", "Telemetry", "Discovery", "Security"],
        ["Kubernetes"] = [Root, "Model", "Configuration", "Telemetry", "Discovery", "Security"],
        ["Balancing"] = [Root, "Model", "Configuration", "Telemetry", "Discovery", "Security"],
        ["Resilience"] = [Root, "Model", "Configuration", "Telemetry", "Balancing"],
        ["Hedging"] = [Root, "Model", "Configuration", "Telemetry", "Resilience"],
        ["Routing"] = [Root, "Model", "Configuration", "Telemetry", "Balancing"],
        ["Status"] = [Root, "Model", "Configuration", "Telemetry", "Discovery", "Balancing", "Resilience", "Hedging", "Routing"],
        ["Handlers"] = [Root, "Model", "Configuration", "Telemetry", "Discovery", "Security", "Balancing", "Resilience", "Hedging", "Routing"],
        [DependencyInjection] = [Root, "Model", "Configuration", "Telemetry", "Discovery", "Security", "Balancing", "Resilience", "Hedging", "Routing", "Status", "Handlers"],
    };

    private static readonly Assembly Mesh = typeof(MeshOptions).Assembly;

    public static TheoryData<string> Folders() => [.. Allowed.Keys];

    [Theory]
    [MemberData(nameof(Folders))]
    public void AFolder_NamesOnlyTheFoldersItMayImport(string folder)
    {
        var forbidden = Allowed.Keys.Where(other => other != folder && !Allowed[folder].Contains(other)).SelectMany(Namespaces).ToArray();
        if (forbidden.Length == 0)
        {
            return;
        }

        var result = TypesOf(folder).ShouldNot().HaveDependencyOnAny(forbidden).GetResult();
        Assert.True(result.IsSuccessful, $"{folder} names a folder it may not import ({string.Join(", ", forbidden)}): {string.Join(", ", result.FailingTypeNames ?? [])}");
    }

    [Fact]
    public void TheArrows_HaveNoCircle()
    {
        // Depth-first search: a folder met again while it is on the path closes a circle.
        var state = new Dictionary<string, int>();
        var path = new Stack<string>();
        foreach (var folder in Allowed.Keys)
        {
            Visit(folder);
        }

        void Visit(string folder)
        {
            if (state.GetValueOrDefault(folder) == 2)
            {
                return;
            }

            Assert.False(state.GetValueOrDefault(folder) == 1, $"a circle: {string.Join(" <- ", path)} <- {folder}");
            state[folder] = 1;
            path.Push(folder);
            foreach (var imported in Allowed[folder])
            {
                Visit(imported);
            }

            path.Pop();
            state[folder] = 2;
        }
    }

    [Fact]
    public void EveryNamespace_BelongsToAListedFolder()
    {
        var known = Allowed.Keys.SelectMany(Namespaces).Append("MeshClient").ToHashSet(StringComparer.Ordinal);
        var unknown = Mesh.GetTypes()
            .Select(t => t.Namespace)
            .Where(ns => ns is not null && ns.StartsWith("MeshClient", StringComparison.Ordinal) && !known.Contains(ns))
            .Distinct()
            .ToList();
        Assert.True(unknown.Count == 0, $"namespaces of no listed folder: {string.Join(", ", unknown)}");
    }

    [Fact]
    public void TheCheck_CatchesABackEdge()
    {
        // The rule applied to a folder that does name a forbidden one: the handlers name the balancer, so the same
        // check that holds Model to its leaves fails when pointed the other way.
        var result = TypesOf("Handlers").ShouldNot().HaveDependencyOnAny(Namespaces("Balancing")).GetResult();
        Assert.False(result.IsSuccessful);
    }

    /// <summary>The namespaces (or, in <c>Microsoft.Extensions.DependencyInjection</c>, the types) of a folder.</summary>
    private static string[] Namespaces(string folder) => folder switch
    {
        Root => [],
        DependencyInjection => ["Microsoft.Extensions.DependencyInjection.MeshServiceCollectionExtensions", "Microsoft.Extensions.DependencyInjection.MeshHttpClientBuilderExtensions"],
        _ => ["MeshClient." + folder],
    };

    private static PredicateList TypesOf(string folder)
    {
        var types = Types.InAssembly(Mesh).That();
        return folder switch
        {
            Root => types.ResideInNamespaceMatching("^MeshClient$"),
            DependencyInjection => types.ResideInNamespace("Microsoft.Extensions.DependencyInjection").And().HaveNameStartingWith("Mesh"),
            "Consul" or "Kubernetes" => types.ResideInNamespaceMatching($"^MeshClient\\.{folder}$").Or().HaveNameStartingWith(folder + "MeshBuilderExtensions"),
            "Telemetry" => types.ResideInNamespaceMatching("^MeshClient\\.Telemetry$").Or().ResideInNamespaceMatching("^OpenTelemetry\\."),
            _ => types.ResideInNamespaceMatching($"^MeshClient\\.{folder}$"),
        };
    }
}
