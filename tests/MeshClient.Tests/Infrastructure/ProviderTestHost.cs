using MeshClient.Discovery;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Tests.Infrastructure;

/// <summary>
/// A mesh host with one optional discovery provider (Consul, Kubernetes) and every log line collected: what the
/// provider suites share.
/// </summary>
internal abstract class ProviderTestHost : IAsyncDisposable
{
    protected ProviderTestHost(MeshHost host, FakeLogCollector logs)
    {
        Host = host;
        Logs = logs;
    }

    public MeshHost Host { get; }

    public FakeLogCollector Logs { get; }

    public IServiceProvider Services => Host.Services;

    public HttpClient CreateClient() => Host.CreateClient();

    /// <summary>Log records of one event id.</summary>
    public IReadOnlyList<FakeLogRecord> Events(int eventId) => [.. Logs.GetSnapshot().Where(r => r.Id.Id == eventId)];

    public virtual async ValueTask DisposeAsync() => await Host.DisposeAsync();

    /// <summary>A mesh host from <paramref name="values"/> that logs everything to <paramref name="logs"/>.</summary>
    protected static MeshHost CreateHost(Dictionary<string, string?> values, FakeLogCollector logs, Action<IServiceCollection> configure) =>
        MeshHost.Create(values, services =>
        {
            services.AddLogging(b =>
            {
                b.SetMinimumLevel(LogLevel.Trace);
                b.AddProvider(new FakeLoggerProvider(logs));
            });
            configure(services);
        });

    /// <summary>
    /// What discovery currently says about a service (through the public resolver), one value per endpoint id; a
    /// source the resolver replaced (and disposed) while it was read is read again.
    /// </summary>
    protected async Task<IReadOnlyDictionary<string, T>> EndpointsAsync<T>(string service, Func<ServiceEndpoint, T> value)
    {
        var resolver = Services.GetRequiredService<ServiceEndpointResolver>();
        for (var attempt = 0; ; attempt++)
        {
            var source = await resolver.GetEndpointsAsync("http://" + service, CancellationToken.None);
            try
            {
                return source.Endpoints.ToDictionary(e => e.Features.Get<IMeshEndpointFeature>()?.Id ?? e.EndPoint.ToString()!, value);
            }
            catch (ObjectDisposedException) when (attempt < 3)
            {
                // The resolver replaced (and disposed) that source while it was read: read the current one.
            }
        }
    }
}
