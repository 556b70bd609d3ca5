using System.Collections.Concurrent;
using System.Net;
using MeshClient.Balancing;
using MeshClient.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Infrastructure;

/// <summary>
/// An in-memory primary handler standing in for several endpoints (keyed by authority, e.g. "10.0.0.1:80"), for
/// tests that run on a <c>FakeTimeProvider</c>: each endpoint answers by its behaviour and counts its requests.
/// </summary>
public sealed class StubEndpoints : HttpMessageHandler
{
    private readonly ConcurrentDictionary<string, int> _counts = new();

    public ConcurrentDictionary<string, Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>>> Behaviors { get; } = new();

    public int Count(string authority) => _counts.GetValueOrDefault(authority);

    public int Total => _counts.Values.Sum();

    public void Reset() => _counts.Clear();

    public static Task<HttpResponseMessage> Status(HttpStatusCode status) => Task.FromResult(new HttpResponseMessage(status));

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var authority = request.RequestUri!.Authority;
        _counts.AddOrUpdate(authority, 1, (_, c) => c + 1);
        return Behaviors.TryGetValue(authority, out var behave) ? behave(request, cancellationToken) : Status(HttpStatusCode.OK);
    }

    public static Dictionary<string, string?> Settings(string service, string policy, int count)
    {
        var settings = new Dictionary<string, string?> { [$"Mesh:Services:{service}:LoadBalancer"] = policy };
        for (var i = 0; i < count; i++)
        {
            settings[$"Mesh:Services:{service}:Endpoints:{i}:Address"] = $"http://10.0.0.{i + 1}:8080";
        }

        return settings;
    }

    /// <summary>
    /// A mesh on <paramref name="time"/> whose "test" client reaches four stub endpoints of "catalog" (round robin),
    /// with the settings <paramref name="tune"/> adds.
    /// </summary>
    public static (MeshHost Host, StubEndpoints Stub) CreateHost(FakeTimeProvider time, Action<Dictionary<string, string?>> tune)
    {
        var stub = new StubEndpoints();
        var settings = Settings("catalog", LoadBalancerNames.RoundRobin, 4);
        tune(settings);
        var host = MeshHost.Create(settings, services =>
        {
            services.AddSingleton<TimeProvider>(time);
            services.AddHttpClient("test").ConfigurePrimaryHttpMessageHandler(() => stub);
        });
        return (host, stub);
    }
}
