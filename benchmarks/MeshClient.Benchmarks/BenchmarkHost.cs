using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshClient.Benchmarks;

/// <summary>What the pipeline benchmarks share: four catalog endpoints in configuration, a provider, a fake primary.</summary>
internal static class BenchmarkHost
{
    /// <summary>Four catalog endpoints, under Mesh:Services and under the standard Services section.</summary>
    public static Dictionary<string, string?> CatalogSettings()
    {
        var settings = new Dictionary<string, string?>();
        for (var i = 0; i < 4; i++)
        {
            settings[$"Mesh:Services:catalog:Endpoints:{i}:Address"] = $"http://10.0.0.{i + 1}:8080";
            settings[$"Services:catalog:http:{i}"] = $"http://10.0.0.{i + 1}:8080";
        }

        return settings;
    }

    public static ServiceProvider Build(Action<IServiceCollection> configure)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(CatalogSettings()).Build());
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
        configure(services);
        return services.BuildServiceProvider();
    }
}

/// <summary>Answers every request with 200 and an empty body, without touching the network.</summary>
/// <param name="suspend">
/// Whether to answer asynchronously (after a <see cref="Task.Yield"/>), as a socket does: every async method above it
/// then suspends and allocates its state machine, which a synchronous answer never shows (issue 19: the in-memory
/// benchmark said +1 KB a request where real traffic cost +3.2 KB).
/// </param>
internal sealed class InMemoryHandler(bool suspend = false) : HttpMessageHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        suspend ? AnswerLaterAsync(request) : Task.FromResult(Answer(request));

    private static HttpResponseMessage Answer(HttpRequestMessage request) => new(HttpStatusCode.OK) { RequestMessage = request };

    private static async Task<HttpResponseMessage> AnswerLaterAsync(HttpRequestMessage request)
    {
        await Task.Yield();
        return Answer(request);
    }
}
