using System.Diagnostics;
using MeshClient.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace MeshClient.Benchmarks;

/// <summary>
/// <c>--bind N</c>: what binding <c>Mesh:Services</c> of N services × 20 endpoints costs, step by step (at start-up and
/// on every reload of a static configuration): a walk of the section's children alone, the binder, the mesh's check
/// for unknown keys, and its validator. Each <see cref="IConfiguration.GetChildren"/> scans every key of the
/// provider, so walking (and so binding) the section grows with the square of its size (dotnet/runtime#65885).
/// </summary>
internal static class BindProbe
{
    public static void Run(int services)
    {
        var section = new ConfigurationRoot([new MutableConfigurationProvider(ScaleMesh.Settings(services, ScaleSetup.Endpoints))]).GetSection("Mesh");
        var clock = Stopwatch.StartNew();
        var nodes = Walk(section);
        Console.WriteLine($"{services:N0} services × {ScaleSetup.Endpoints} endpoints ({nodes:N0} configuration nodes):");
        Console.WriteLine($"- GetChildren walk of Mesh:Services: {clock.ElapsedMilliseconds:N0} ms");
        clock.Restart();
        var options = new MeshOptions();
        section.Bind(options);
        Console.WriteLine($"- ConfigurationBinder.Bind: {clock.ElapsedMilliseconds:N0} ms");
        clock.Restart();
        MeshServiceCollectionExtensions.CheckKeys(section, options, []);
        Console.WriteLine($"- the mesh's unknown-key check: {clock.ElapsedMilliseconds:N0} ms");
        clock.Restart();
        var result = new MeshOptionsValidator(new MeshConfigurationPath("Mesh")).Validate(Options.DefaultName, options);
        Console.WriteLine($"- the mesh's validator: {clock.ElapsedMilliseconds:N0} ms (valid: {result.Succeeded})");
    }

    private static int Walk(IConfiguration configuration) => configuration.GetChildren().Sum(child => 1 + Walk(child));
}
