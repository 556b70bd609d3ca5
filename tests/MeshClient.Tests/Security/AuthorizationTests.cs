using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Tests.Security;

/// <summary>
/// An <c>Authorization</c> header meant for one service never reaches an endpoint of another: redirects, retries,
/// a request object sent twice, and the Host override of an endpoint, against real Kestrel backends.
/// </summary>
public sealed class AuthorizationTests
{
    private const string Secret = "Bearer s3cr3t-for-service-a";

    private readonly ConcurrentQueue<(string Backend, string? Authorization, string Host)> _seen = new();

    public static TheoryData<string> PrimaryHandlers => ["factory default", "SocketsHttpHandler", "HttpClientHandler"];

    [Theory]
    [MemberData(nameof(PrimaryHandlers))]
    public async Task RedirectToAnotherServicesEndpoint_IsFollowedWithoutTheAuthorizationHeader(string primary)
    {
        await using var b = await StartAsync("b");
        await using var a = await StartAsync("a", context => Redirect(context, $"http://127.0.0.1:{b.Port}/from-a"));
        await using var mesh = MeshHost.Create(Settings(("a", a), ("b", b)), Primary(primary));
        var client = mesh.CreateClient();
        client.DefaultRequestHeaders.Authorization = AuthenticationHeaderValue.Parse(Secret);

        using var response = await client.GetAsync("http://a/start");
        Assert.Equal("b", await response.Content.ReadAsStringAsync());

        Assert.Equal(Secret, Assert.Single(_seen, s => s.Backend == "a").Authorization);
        var atB = Assert.Single(_seen, s => s.Backend == "b");
        Assert.Null(atB.Authorization);
    }

    [Fact]
    public async Task RedirectToAnotherServicesEndpoint_DoesNotCarryTheHostOverrideOfTheFirstEndpoint()
    {
        await using var b = await StartAsync("b");
        await using var a = await StartAsync("a", context => Redirect(context, $"http://127.0.0.1:{b.Port}/from-a"));
        var settings = Settings(("a", a), ("b", b));
        settings["Mesh:Services:a:Endpoints:0:HostName"] = "a.internal";
        await using var mesh = MeshHost.Create(settings);
        var client = mesh.CreateClient();
        client.DefaultRequestHeaders.Authorization = AuthenticationHeaderValue.Parse(Secret);

        using var response = await client.GetAsync("http://a/start");
        response.EnsureSuccessStatusCode();

        Assert.Equal("a.internal", Assert.Single(_seen, s => s.Backend == "a").Host);
        var atB = Assert.Single(_seen, s => s.Backend == "b");
        Assert.Null(atB.Authorization);
        Assert.Equal($"127.0.0.1:{b.Port}", atB.Host);
    }

    [Theory]
    [MemberData(nameof(PrimaryHandlers))]
    public async Task RedirectToAMeshServiceName_GoesThroughTheMesh_WithoutTheAuthorizationHeader(string primary)
    {
        // The mesh follows redirects above its handlers: "http://b/..." is discovered and balanced like any call
        // (inside the primary handler it would have gone to DNS). A relative Location goes back to the service
        // that answered, not to its endpoint's address.
        await using var b = await StartAsync("b", context => context.Request.Path == "/from-a"
            ? Redirect(context, "/again")
            : context.Response.WriteAsync("b" + context.Request.Path));
        await using var a = await StartAsync("a", context => Redirect(context, "http://b/from-a"));
        await using var mesh = MeshHost.Create(Settings(("a", a), ("b", b)), Primary(primary));
        var client = mesh.CreateClient();
        client.DefaultRequestHeaders.Authorization = AuthenticationHeaderValue.Parse(Secret);

        using var response = await client.GetAsync("http://a/start");
        Assert.Equal("b/again", await response.Content.ReadAsStringAsync());
        Assert.Equal(new Uri("http://b/again"), response.RequestMessage!.RequestUri);
        Assert.Equal(Secret, Assert.Single(_seen, s => s.Backend == "a").Authorization);
        Assert.Equal(2, b.Count);
        Assert.All(_seen.Where(s => s.Backend == "b"), s => Assert.Null(s.Authorization));
    }

    [Fact]
    public async Task Redirects_FollowDotNetsRules_HopLimitAndSeeOther()
    {
        var hops = 0;
        await using var loop = await StartAsync("loop", context => Redirect(context, $"/hop{Interlocked.Increment(ref hops)}"));
        await using var mesh = MeshHost.Create(Settings(("loop", loop)), s =>
            s.ConfigureHttpClientDefaults(b => b.ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { MaxAutomaticRedirections = 3 })));
        var client = mesh.CreateClient();

        // At most MaxAutomaticRedirections hops, then the caller gets the last 3xx.
        using var response = await client.GetAsync("http://loop/");
        Assert.Equal(HttpStatusCode.Found, response.StatusCode);
        Assert.Equal(4, loop.Count);

        // A 303 after a POST becomes a GET without a body.
        await using var seeOther = await StartAsync("see", context =>
        {
            if (context.Request.Path == "/posted")
            {
                context.Response.StatusCode = StatusCodes.Status303SeeOther;
                context.Response.Headers.Location = "/result";
                return Task.CompletedTask;
            }

            return context.Response.WriteAsync(context.Request.Method + " " + context.Request.ContentLength);
        });
        await using var mesh2 = MeshHost.Create(Settings(("see", seeOther)));
        using var posted = await mesh2.CreateClient().PostAsync("http://see/posted", new StringContent("body"));
        Assert.Equal("GET ", await posted.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task RedirectFromAnMtlsEndpoint_GetsNeitherTheMeshTrustNorTheClientCertificate()
    {
        using var pki = TestPki.Create();
        var redirectedWithCertificate = 0;
        await using var b = await TestBackend.StartHttpsAsync("b", pki.Server(), ClientCertificateMode.AllowCertificate, async context =>
        {
            if (context.Connection.ClientCertificate is not null)
            {
                Interlocked.Increment(ref redirectedWithCertificate);
            }

            await context.Response.WriteAsync("b");
        });
        await using var a = await TestBackend.StartHttpsAsync("a", pki.Server(), ClientCertificateMode.RequireCertificate, context =>
            Redirect(context, $"https://localhost:{b.Port}/from-a"));
        var clientFile = pki.WritePem(pki.Client(), key: true, out var keyFile);
        await using var mesh = MeshHost.Create(new Dictionary<string, string?>
        {
            ["Mesh:Services:a:Endpoints:0:Address"] = $"https://127.0.0.1:{a.Port}",
            ["Mesh:Tls:CaCertificateFile"] = pki.AuthorityFile,
            ["Mesh:Tls:ClientCertificateFile"] = clientFile,
            ["Mesh:Tls:ClientKeyFile"] = keyFile,
        });

        // a (a mesh endpoint) accepted the mesh identity; the redirect target is outside the mesh: the platform
        // does not trust the mesh CA there, so the handshake fails before any request.
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => mesh.CreateClient().GetAsync("http://a/start"));
        Assert.IsType<System.Security.Authentication.AuthenticationException>(error.InnerException);
        Assert.True(a.Count >= 1);
        Assert.Equal(0, b.Count);
        Assert.Equal(0, redirectedWithCertificate);
    }

    [Fact]
    public async Task Retries_StayOnTheEndpointsOfTheRequestedService()
    {
        await using var a1 = await StartAsync("a1", context => Status(context, 503));
        await using var a2 = await StartAsync("a2", context => Status(context, 503));
        await using var a3 = await StartAsync("a3", context => Status(context, 503));
        await using var b = await StartAsync("b");
        var settings = Settings(("a", a1), ("b", b));
        settings["Mesh:Services:a:Endpoints:1:Address"] = a2.Address.ToString();
        settings["Mesh:Services:a:Endpoints:2:Address"] = a3.Address.ToString();
        settings["Mesh:Resilience:MaxRetries"] = "5";
        settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
        settings["Mesh:Resilience:RetryMaxDelay"] = "00:00:00";
        await using var mesh = MeshHost.Create(settings);
        var client = mesh.CreateClient();
        client.DefaultRequestHeaders.Authorization = AuthenticationHeaderValue.Parse(Secret);

        for (var i = 0; i < 5; i++)
        {
            using var response = await client.GetAsync("http://a/");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        }

        Assert.Equal(0, b.Count);
        Assert.True(_seen.Count >= 10, $"retries happened ({_seen.Count} attempts)");
        Assert.All(_seen, s => Assert.StartsWith("a", s.Backend, StringComparison.Ordinal));
        Assert.All(_seen, s => Assert.Equal(Secret, s.Authorization));
    }

    [Fact]
    public async Task ARequestObject_CannotBeSentASecondTime_ToAnotherService()
    {
        await using var a = await StartAsync("a");
        await using var b = await StartAsync("b");
        await using var mesh = MeshHost.Create(Settings(("a", a), ("b", b)));
        var client = mesh.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "http://a/");
        request.Headers.Authorization = AuthenticationHeaderValue.Parse(Secret);
        (await client.SendAsync(request)).EnsureSuccessStatusCode();

        // The mesh restored the URI the caller asked for; HttpClient refuses to send the message again.
        Assert.Equal(new Uri("http://a/"), request.RequestUri);
        request.RequestUri = new Uri("http://b/");
        await Assert.ThrowsAsync<InvalidOperationException>(() => client.SendAsync(request));
        Assert.Equal(0, b.Count);
    }

    [Fact]
    public async Task ARequestObject_SentAgainThroughTheHandler_GoesWhereItsNewUriSays_WithAFreshMeshContext()
    {
        // Below HttpClient (an HttpMessageInvoker on the factory's handler) nothing stops a second send. The mesh
        // reads the service from the URI of each send, never from state left on the request by the first.
        await using var a = await StartAsync("a");
        await using var b = await StartAsync("b");
        var settings = Settings(("a", a), ("b", b));
        settings["Mesh:Services:a:Endpoints:0:HostName"] = "a.internal";
        await using var mesh = MeshHost.Create(settings);
        using var invoker = new HttpMessageInvoker(mesh.Services.GetRequiredService<IHttpMessageHandlerFactory>().CreateHandler("test"), disposeHandler: false);
        using var request = new HttpRequestMessage(HttpMethod.Get, "http://a/");
        (await invoker.SendAsync(request, CancellationToken.None)).EnsureSuccessStatusCode();
        Assert.Null(request.Headers.Host);

        request.RequestUri = new Uri("http://b/");
        (await invoker.SendAsync(request, CancellationToken.None)).EnsureSuccessStatusCode();
        Assert.Equal(1, a.Count);
        Assert.Equal(1, b.Count);
        Assert.Equal($"127.0.0.1:{b.Port}", Assert.Single(_seen, s => s.Backend == "b").Host);
    }

    private Task<TestBackend> StartAsync(string name, Func<HttpContext, Task>? behavior = null) =>
        TestBackend.StartAsync(name, async context =>
        {
            _seen.Enqueue((name, context.Request.Headers.Authorization.FirstOrDefault(), context.Request.Headers.Host.ToString()));
            if (behavior is null)
            {
                await context.Response.WriteAsync(name);
            }
            else
            {
                await behavior(context);
            }
        });

    private static Task Redirect(HttpContext context, string location)
    {
        context.Response.StatusCode = StatusCodes.Status302Found;
        context.Response.Headers.Location = location;
        return Task.CompletedTask;
    }

    private static Task Status(HttpContext context, int status)
    {
        context.Response.StatusCode = status;
        return Task.CompletedTask;
    }

    private static Dictionary<string, string?> Settings(params (string Service, TestBackend Backend)[] services)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (service, backend) in services)
        {
            settings[$"Mesh:Services:{service}:Endpoints:0:Address"] = backend.Address.ToString();
        }

        return settings;
    }

    private static Action<IServiceCollection>? Primary(string kind) => kind switch
    {
        "SocketsHttpHandler" => s => s.ConfigureHttpClientDefaults(b => b.ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler())),
        "HttpClientHandler" => s => s.ConfigureHttpClientDefaults(b => b.ConfigurePrimaryHttpMessageHandler(() => new HttpClientHandler())),
        _ => null,
    };
}
