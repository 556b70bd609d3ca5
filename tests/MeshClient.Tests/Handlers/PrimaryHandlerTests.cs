using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http;

namespace MeshClient.Tests.Handlers;

/// <summary>
/// Issue 12, item 9: since .NET 9 the factory's default primary handler is a <see cref="SocketsHttpHandler"/>, not an
/// <see cref="HttpClientHandler"/>; the mesh configures that one, and the README says so.
/// </summary>
public sealed class PrimaryHandlerTests
{
    [Fact]
    public async Task TheFactorysDefaultPrimaryHandler_IsASocketsHttpHandler_AndTheMeshConfiguresIt()
    {
        var seen = new List<HttpMessageHandler>();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Endpoints:0:Address"] = "http://127.0.0.1:5001",
        }).Build());

        // Registered first, so it runs outermost: it sees the builder after the mesh's filter has run.
        services.AddSingleton<IHttpMessageHandlerBuilderFilter>(new RecordingFilter(seen));
        services.AddMesh();
        await using var provider = services.BuildServiceProvider();

        _ = provider.GetRequiredService<IHttpClientFactory>().CreateClient("catalog");

        var primary = Assert.IsType<SocketsHttpHandler>(Assert.Single(seen));
        Assert.False(primary.AllowAutoRedirect); // the mesh follows redirects itself, above its handlers
        Assert.Equal(TimeSpan.FromMinutes(2), primary.PooledConnectionLifetime); // the factory's own, not a replacement

        var readme = File.ReadAllText(FindReadme());
        Assert.DoesNotContain("`HttpClientHandler` primary (the factory's default)", readme, StringComparison.Ordinal);
        Assert.Contains("the factory's default primary handler, a `SocketsHttpHandler`", readme, StringComparison.Ordinal);
    }

    private static string FindReadme()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "MeshClient.sln")))
            {
                return Path.Combine(directory.FullName, "README.md");
            }
        }

        throw new FileNotFoundException("README.md of the repository");
    }

    private sealed class RecordingFilter(List<HttpMessageHandler> seen) : IHttpMessageHandlerBuilderFilter
    {
        public Action<HttpMessageHandlerBuilder> Configure(Action<HttpMessageHandlerBuilder> next) => builder =>
        {
            next(builder);
            seen.Add(builder.PrimaryHandler);
        };
    }
}
