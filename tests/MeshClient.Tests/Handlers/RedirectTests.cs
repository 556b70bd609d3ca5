using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography.X509Certificates;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshClient.Tests.Handlers;

/// <summary>
/// Redirects through the mesh behave exactly as .NET's own: each scenario runs side by side, once with a plain
/// HttpClient on the same primary handler (addressing the backend) and once through the mesh (addressing the
/// service), and both must end the same way with the same requests seen by the servers. Real Kestrel backends.
/// </summary>
public sealed class RedirectTests
{
    private static readonly NetworkCredential Alice = new("alice", "s3cret");

    private readonly ConcurrentQueue<Seen> _seen = new();

    /// <summary>The primary handlers compared: without credentials the mesh follows redirects itself; with credentials .NET would not send across a redirect, the primary does.</summary>
    public static TheoryData<string> Primaries => ["SocketsHttpHandler", "SocketsHttpHandler + NetworkCredential", "HttpClientHandler + NetworkCredential", "HttpClientHandler + default credentials", "SocketsHttpHandler + CredentialCache"];

    [Theory]
    [MemberData(nameof(Primaries))]
    public async Task Credentials_AreNotSentToARedirectTarget_UnlessDotNetWouldSendThem(string primary)
    {
        // a asks for Basic authentication, then redirects to b on another port, which asks for it too.
        await using var b = await StartAsync("b", RequireBasic("b", ok: "b"));
        await using var a = await StartAsync("a", RequireBasic("a", ok: null, redirectTo: $"http://127.0.0.1:{b.Port}/target"));
        var make = Primary(primary, a, b);

        var plain = await RunPlainAsync(make, new Uri(a.Address, "/start"));
        var mesh = await RunMeshAsync(make, Settings(("a", a)), new Uri("http://a/start"));

        Assert.Equal(plain, mesh);
        var expected = primary switch
        {
            // With a NetworkCredential a plain HttpClient ends 401: b never gets the credentials.
            "SocketsHttpHandler + NetworkCredential" or "HttpClientHandler + NetworkCredential" => "401 | a GET /start - | a GET /start Basic | b GET /target -",
            // A CredentialCache names the hosts it is for: .NET answers b's challenge too.
            "SocketsHttpHandler + CredentialCache" => "200 b | a GET /start - | a GET /start Basic | b GET /target - | b GET /target Basic",
            _ => "401 | a GET /start -",
        };
        Assert.Equal(expected, mesh);
    }

    [Theory]
    [MemberData(nameof(Primaries))]
    public async Task MethodRules_AndTheAuthorizationHeader_AreThoseOfDotNet(string primary)
    {
        // 301/302 turn a POST into a GET without a body, 303 turns anything but GET/HEAD into a GET, 307/308 keep the
        // method and the body; Authorization is dropped on every redirect.
        await using var s = await StartAsync("s", context =>
        {
            if (context.Request.Path == "/start")
            {
                context.Response.StatusCode = int.Parse(context.Request.Query["status"]!, System.Globalization.CultureInfo.InvariantCulture);
                context.Response.Headers.Location = "/end";
                return Task.CompletedTask;
            }

            return context.Response.WriteAsync("end");
        });
        var make = Primary(primary, s, s);
        foreach (var status in new[] { 301, 302, 303, 307, 308 })
        {
            foreach (var method in new[] { HttpMethod.Get, HttpMethod.Post, HttpMethod.Put })
            {
                HttpRequestMessage Request(Uri uri)
                {
                    var request = new HttpRequestMessage(method, uri) { Content = method == HttpMethod.Get ? null : new StringContent("body") };
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "for-s");
                    return request;
                }

                var plain = await RunPlainAsync(make, new Uri(s.Address, $"/start?status={status}"), Request);
                var mesh = await RunMeshAsync(make, Settings(("s", s)), new Uri($"http://s/start?status={status}"), Request);
                Assert.Equal(plain, mesh);
                var after = (status, method.Method) switch
                {
                    (301 or 302, "POST") or (303, "POST" or "PUT") => "GET /end -",
                    (_, "GET") => "GET /end -",
                    _ => $"{method.Method} /end - 4",
                };
                var before = method == HttpMethod.Get ? "GET" : $"{method.Method}";
                Assert.Equal($"200 end | s {before} /start?status={status} Bearer{(method == HttpMethod.Get ? string.Empty : " 4")} | s {after}", mesh);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Primaries))]
    public async Task FiftyHops_AreFollowed_ThenTheCallerGetsTheRedirect(string primary)
    {
        await using var loop = await StartAsync("loop", context =>
        {
            var hop = context.Request.Path == "/" ? 0 : int.Parse(context.Request.Path.Value!.AsSpan(5), System.Globalization.CultureInfo.InvariantCulture);
            context.Response.StatusCode = StatusCodes.Status302Found;
            context.Response.Headers.Location = $"/hop/{hop + 1}";
            return Task.CompletedTask;
        });
        var make = Primary(primary, loop, loop);

        var plain = await RunPlainAsync(make, loop.Address);
        var mesh = await RunMeshAsync(make, Settings(("loop", loop)), new Uri("http://loop/"));

        Assert.Equal(plain, mesh);
        Assert.StartsWith("302 | loop GET / - | loop GET /hop/1 - |", mesh, StringComparison.Ordinal);
        Assert.EndsWith("| loop GET /hop/50 -", mesh, StringComparison.Ordinal);
        Assert.Equal(51, mesh.Split(" | ").Length - 1);
    }

    [Theory]
    [MemberData(nameof(Primaries))]
    public async Task HttpsToHttp_IsNotFollowed(string primary)
    {
        using var pki = TestPki.Create();
        await using var target = await StartAsync("target");
        using var certificate = pki.Server();
        await using var secure = await TestBackend.StartHttpsAsync("secure", certificate, ClientCertificateMode.NoCertificate, async context =>
        {
            _seen.Enqueue(new Seen("secure", context.Request.Method, context.Request.Path + context.Request.QueryString, null, null));
            context.Response.StatusCode = StatusCodes.Status302Found;
            context.Response.Headers.Location = $"http://127.0.0.1:{target.Port}/downgraded";
            await Task.CompletedTask;
        });
        var make = Primary(primary, secure, target, certificate);

        var plain = await RunPlainAsync(make, new Uri(secure.Address, "/start"));
        var settings = new Dictionary<string, string?> { ["Mesh:Services:secure:Endpoints:0:Address"] = secure.Address.ToString() };
        var mesh = await RunMeshAsync(make, settings, new Uri("https://secure/start"));

        Assert.Equal(plain, mesh);
        Assert.Equal("302 | secure GET /start -", mesh);
        Assert.Equal(0, target.Count);
    }

    [Fact]
    public async Task APrimaryWithCredentials_KeepsItsOwnRedirectFollowing_AndSaysSoOncePerClient()
    {
        var logs = new ConcurrentQueue<(EventId Id, string Message)>();
        await using var mesh = MeshHost.Create(new Dictionary<string, string?>(), s =>
        {
            s.AddLogging(b => b.AddProvider(new CapturingLoggerProvider(logs)));
            s.AddHttpClient("with-credentials").ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { Credentials = Alice });
            s.AddHttpClient("plain");
        });
        var handlers = mesh.Services.GetRequiredService<IHttpMessageHandlerFactory>();
        handlers.CreateHandler("with-credentials");
        handlers.CreateHandler("plain");

        var kept = Assert.Single(logs, l => l.Id.Id == 15);
        Assert.Equal("RedirectsLeftToPrimaryHandler", kept.Id.Name);
        Assert.Contains("'with-credentials'", kept.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("localhost")]
    public async Task ARedirectToAPassThroughHost_GetsNoMeshWork_LikeACallMadeThere(string host)
    {
        // The target answers 503: with catalog's pipelines it would be retried (catalog's MaxRetries, budget and
        // attempt timeout); called directly, a pass-through host gets no retry.
        await using var target = await StartAsync("target", context =>
        {
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return Task.CompletedTask;
        });
        await using var catalog = await StartAsync("catalog", context =>
        {
            context.Response.StatusCode = StatusCodes.Status302Found;
            context.Response.Headers.Location = $"http://{host}:{target.Port}/";
            return Task.CompletedTask;
        });
        var settings = Settings(("catalog", catalog));
        settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
        await using var mesh = MeshHost.Create(settings);
        var client = mesh.CreateClient();

        using (var direct = await client.GetAsync($"http://{host}:{target.Port}/"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, direct.StatusCode);
        }

        Assert.Equal(1, target.Count);
        target.ResetCount();

        using var redirected = await client.GetAsync("http://catalog/");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, redirected.StatusCode);
        Assert.Equal(1, catalog.Count);
        Assert.Equal(1, target.Count);
    }

    private async Task<string> RunPlainAsync(Func<HttpMessageHandler> primary, Uri start, Func<Uri, HttpRequestMessage>? request = null)
    {
        using var client = new HttpClient(primary());
        return await RunAsync(client, start, request);
    }

    private async Task<string> RunMeshAsync(Func<HttpMessageHandler> primary, Dictionary<string, string?> settings, Uri start, Func<Uri, HttpRequestMessage>? request = null)
    {
        await using var mesh = MeshHost.Create(settings, s => s.ConfigureHttpClientDefaults(b => b.ConfigurePrimaryHttpMessageHandler(primary)));
        return await RunAsync(mesh.CreateClient(), start, request);
    }

    /// <summary>"status [body] | backend method path authorization-scheme [content-length] | …", and clears what was seen.</summary>
    private async Task<string> RunAsync(HttpClient client, Uri start, Func<Uri, HttpRequestMessage>? request)
    {
        using var message = request?.Invoke(start) ?? new HttpRequestMessage(HttpMethod.Get, start);
        using var response = await client.SendAsync(message);
        var body = await response.Content.ReadAsStringAsync();
        var result = ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture)
            + (response.IsSuccessStatusCode ? " " + body : string.Empty);
        while (_seen.TryDequeue(out var seen))
        {
            result += $" | {seen.Backend} {seen.Method} {seen.Path} {seen.Authorization ?? "-"}{(seen.ContentLength is { } length ? " " + length : string.Empty)}";
        }

        return result;
    }

    /// <summary>A primary handler of <paramref name="kind"/> that trusts <paramref name="server"/> (a test certificate) by thumbprint.</summary>
    private static Func<HttpMessageHandler> Primary(string kind, TestBackend first, TestBackend second, X509Certificate2? server = null)
    {
        var thumbprint = server?.GetCertHashString();
        bool Trusted(X509Certificate? certificate) => thumbprint is not null && certificate?.GetCertHashString() == thumbprint;
        SocketsHttpHandler AcceptingTestCertificates() => new()
        {
            SslOptions = { RemoteCertificateValidationCallback = (_, certificate, _, _) => Trusted(certificate) },
        };

        return kind switch
        {
            "SocketsHttpHandler" => AcceptingTestCertificates,
            "SocketsHttpHandler + NetworkCredential" => () =>
            {
                var handler = AcceptingTestCertificates();
                handler.Credentials = Alice;
                return handler;
            },
            "HttpClientHandler + NetworkCredential" => () => new HttpClientHandler { Credentials = Alice, ServerCertificateCustomValidationCallback = (_, certificate, _, _) => Trusted(certificate) },
            "HttpClientHandler + default credentials" => () => new HttpClientHandler { UseDefaultCredentials = true, ServerCertificateCustomValidationCallback = (_, certificate, _, _) => Trusted(certificate) },
            "SocketsHttpHandler + CredentialCache" => () =>
            {
                var cache = new CredentialCache();
                cache.Add(first.Address, "Basic", Alice);
                if (second != first)
                {
                    cache.Add(second.Address, "Basic", Alice);
                }

                var handler = AcceptingTestCertificates();
                handler.Credentials = cache;
                return handler;
            },
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
    }

    /// <summary>Answers 401 with a Basic challenge without credentials; with them, redirects or answers <paramref name="ok"/>.</summary>
    private static Func<HttpContext, Task> RequireBasic(string realm, string? ok, string? redirectTo = null) => context =>
    {
        if (context.Request.Headers.Authorization.Count == 0)
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            context.Response.Headers.WWWAuthenticate = $"Basic realm=\"{realm}\"";
            return Task.CompletedTask;
        }

        if (redirectTo is not null)
        {
            context.Response.StatusCode = StatusCodes.Status302Found;
            context.Response.Headers.Location = redirectTo;
            return Task.CompletedTask;
        }

        return context.Response.WriteAsync(ok!);
    };

    private Task<TestBackend> StartAsync(string name, Func<HttpContext, Task>? behavior = null) =>
        TestBackend.StartAsync(name, async context =>
        {
            var authorization = context.Request.Headers.Authorization.FirstOrDefault();
            _seen.Enqueue(new Seen(name, context.Request.Method, context.Request.Path + context.Request.QueryString, authorization?.Split(' ')[0], context.Request.ContentLength));
            if (behavior is null)
            {
                await context.Response.WriteAsync(name);
            }
            else
            {
                await behavior(context);
            }
        });

    private static Dictionary<string, string?> Settings(params (string Service, TestBackend Backend)[] services)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (service, backend) in services)
        {
            settings[$"Mesh:Services:{service}:Endpoints:0:Address"] = backend.Address.ToString();
        }

        return settings;
    }

    private sealed record Seen(string Backend, string Method, string Path, string? Authorization, long? ContentLength);

    private sealed class CapturingLoggerProvider(ConcurrentQueue<(EventId Id, string Message)> logs) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(logs);

        public void Dispose()
        {
        }

        private sealed class Logger(ConcurrentQueue<(EventId Id, string Message)> logs) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                logs.Enqueue((eventId, formatter(state, exception)));
        }
    }
}
