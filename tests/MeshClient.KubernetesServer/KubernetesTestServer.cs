using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace MeshClient.KubernetesServer;

/// <summary>A request the stand-in received (the bearer token is never recorded, only whether one came).</summary>
public sealed record KubernetesRequestRecord(string Path, string Query, bool Watch, bool HadToken);

/// <summary>
/// A stand-in for the Kubernetes API server's EndpointSlice reads, on Kestrel (127.0.0.1, port 0), serializing
/// KubernetesClient's own model types: list with a resourceVersion; watch from a resourceVersion with ADDED,
/// MODIFIED, DELETED and BOOKMARK events as newline-delimited JSON; 410 Gone for a compacted resourceVersion (as an
/// answer or as an ERROR event, as real servers do); <c>timeoutSeconds</c>; bearer-token authentication (401) and
/// forbidden namespaces (403) with the API server's Status bodies; injected 429/500 answers; dropped watch
/// connections; stop and start on the same port. Its state survives <see cref="StopAsync"/>.
/// </summary>
public sealed class KubernetesTestServer : IAsyncDisposable
{
    private const string SlicesPrefix = "/apis/discovery.k8s.io/v1/namespaces/";
    private const string ServiceLabel = "kubernetes.io/service-name";

    private readonly Lock _lock = new();
    private readonly Dictionary<(string Namespace, string Name), V1EndpointSlice> _slices = [];
    private readonly List<(long ResourceVersion, string Type, string Namespace, string Json, string? Service)> _history = [];
    private readonly ConcurrentDictionary<Watcher, byte> _watchers = new();
    private readonly ConcurrentQueue<KubernetesRequestRecord> _requests = new();
    private readonly ConcurrentQueue<int> _injected = new();
    private WebApplication? _app;
    private long _resourceVersion = 1000;
    private long _compactedBefore;

    private readonly X509Certificate2? _certificate;

    private KubernetesTestServer(X509Certificate2? certificate) => _certificate = certificate;

    public int Port { get; private set; }

    public Uri Address => new($"{(_certificate is null ? "http" : "https")}://127.0.0.1:{Port}");

    /// <summary>Gets or sets the bearer token required (none: any request is accepted).</summary>
    public string? Token { get; set; }

    /// <summary>Gets or sets a second token still accepted (a real API server accepts a rotated token until it expires).</summary>
    public string? PreviousToken { get; set; }

    /// <summary>Gets the namespaces where list and watch are forbidden (403).</summary>
    public ConcurrentDictionary<string, byte> ForbiddenNamespaces { get; } = new();

    /// <summary>Gets or sets how often an idle watch gets a BOOKMARK (when it asked for them). Default: 1 second.</summary>
    public TimeSpan BookmarkInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Gets or sets a value indicating whether a compacted resourceVersion is refused with a 410 answer (else an ERROR event).</summary>
    public bool GoneAsAnswer { get; set; }

    public long ResourceVersion => Interlocked.Read(ref _resourceVersion);

    public IReadOnlyCollection<KubernetesRequestRecord> Requests => _requests;

    public int ActiveWatches => _watchers.Count;

    /// <summary>Gets the number of injected answers not yet given.</summary>
    public int PendingInjections => _injected.Count;

    public int CountRequests(bool watch) => _requests.Count(r => r.Watch == watch);

    /// <summary>Starts a stand-in over http, or over https with <paramref name="certificate"/> (as a real API server).</summary>
    public static async Task<KubernetesTestServer> CreateAsync(X509Certificate2? certificate = null)
    {
        var server = new KubernetesTestServer(certificate);
        await server.StartAsync();
        return server;
    }

    /// <summary>Starts listening (again, on the same port once it is known).</summary>
    public async Task StartAsync()
    {
        if (_app is not null)
        {
            return;
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(IPAddress.Loopback, Port, listen =>
            {
                if (_certificate is not null)
                {
                    // Kestrel wants a certificate whose key it can use as is: a PKCS#12 round trip gives it one.
                    listen.UseHttps(X509CertificateLoader.LoadPkcs12(_certificate.Export(X509ContentType.Pkcs12), null));
                }
            });
        });
        var app = builder.Build();
        app.Run(HandleAsync);
        await app.StartAsync();
        Port = new Uri(app.Urls.First()).Port;
        _app = app;
    }

    /// <summary>Stops listening: connections are refused and open watches are cut, as an API server going down.</summary>
    public async Task StopAsync()
    {
        var app = _app;
        if (app is null)
        {
            return;
        }

        _app = null;
        DropWatches();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await app.StopAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
        }

        await app.DisposeAsync();
    }

    // ------------------------------------------------------------------ test hooks

    /// <summary>Creates or replaces a slice (ADDED or MODIFIED for watchers); returns its new resourceVersion.</summary>
    public long Apply(string ns, V1EndpointSlice slice)
    {
        lock (_lock)
        {
            var copy = Clone(slice);
            copy.ApiVersion = "discovery.k8s.io/v1";
            copy.Kind = "EndpointSlice";
            copy.Metadata ??= new V1ObjectMeta();
            copy.Metadata.NamespaceProperty = ns;
            var key = (ns, copy.Metadata.Name);
            var type = _slices.TryGetValue(key, out var existing) ? "MODIFIED" : "ADDED";
            var rv = Interlocked.Increment(ref _resourceVersion);
            copy.Metadata.ResourceVersion = rv.ToString(CultureInfo.InvariantCulture);
            copy.Metadata.Generation = (existing?.Metadata?.Generation ?? 0) + 1;
            copy.Metadata.Uid = existing?.Metadata?.Uid ?? Guid.NewGuid().ToString();
            copy.Metadata.CreationTimestamp = existing?.Metadata?.CreationTimestamp ?? new DateTime(2025, 1, 1, 0, 0, 0, DateTimeKind.Utc);
            _slices[key] = copy;
            Publish(rv, type, ns, copy);
            return rv;
        }
    }

    /// <summary>Deletes a slice (DELETED for watchers).</summary>
    public bool Delete(string ns, string name)
    {
        lock (_lock)
        {
            if (!_slices.Remove((ns, name), out var slice))
            {
                return false;
            }

            var rv = Interlocked.Increment(ref _resourceVersion);
            slice.Metadata.ResourceVersion = rv.ToString(CultureInfo.InvariantCulture);
            Publish(rv, "DELETED", ns, slice);
            return true;
        }
    }

    /// <summary>Forgets the history before now: a watch from an older resourceVersion gets 410 Gone.</summary>
    public void Compact() => Interlocked.Exchange(ref _compactedBefore, Interlocked.Read(ref _resourceVersion) + 1);

    /// <summary>The next <paramref name="count"/> requests get <paramref name="status"/> (429, 500, …).</summary>
    public void Inject(int status, int count = 1)
    {
        for (var i = 0; i < count; i++)
        {
            _injected.Enqueue(status);
        }
    }

    /// <summary>Sends a raw line to every open watch (a proxy's garbage, a truncated event).</summary>
    public void InjectWatchLine(string line)
    {
        foreach (var watcher in _watchers.Keys)
        {
            watcher.Lines.Writer.TryWrite(line);
        }
    }

    /// <summary>Cuts every open watch connection in the middle of its stream (no chunked terminator).</summary>
    public void DropWatches()
    {
        foreach (var watcher in _watchers.Keys)
        {
            try
            {
                watcher.Context.Abort();
            }
            catch (ObjectDisposedException)
            {
                // That watch ended on its own (the client went away) while the list was walked.
            }
        }
    }

    // ------------------------------------------------------------------ the API

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value ?? string.Empty;
        var watch = request.Query["watch"] == "true" || request.Query["watch"] == "1";
        var authorization = request.Headers.Authorization.ToString();
        _requests.Enqueue(new KubernetesRequestRecord(path, request.QueryString.Value ?? string.Empty, watch, authorization.Length > 0));

        if (Token is { } token && authorization != "Bearer " + token && (PreviousToken is not { } previous || authorization != "Bearer " + previous))
        {
            await WriteStatusAsync(context, 401, "Unauthorized", "Unauthorized");
            return;
        }

        if (!path.StartsWith(SlicesPrefix, StringComparison.Ordinal) || !path.EndsWith("/endpointslices", StringComparison.Ordinal) || request.Method != "GET")
        {
            await WriteStatusAsync(context, 404, "NotFound", "the server could not find the requested resource");
            return;
        }

        var ns = path[SlicesPrefix.Length..^"/endpointslices".Length];
        if (ForbiddenNamespaces.ContainsKey(ns))
        {
            await WriteStatusAsync(context, 403, "Forbidden",
                $"endpointslices.discovery.k8s.io is forbidden: User \"system:serviceaccount:{ns}:default\" cannot {(watch ? "watch" : "list")} resource \"endpointslices\" in API group \"discovery.k8s.io\" in the namespace \"{ns}\"");
            return;
        }

        if (_injected.TryDequeue(out var injected))
        {
            var reason = injected switch { 429 => "TooManyRequests", 410 => "Expired", _ => "InternalError" };
            await WriteStatusAsync(context, injected, reason, $"injected {injected}");
            return;
        }

        var selector = request.Query["labelSelector"].ToString();
        string? service = null;
        if (selector.Length > 0)
        {
            if (!selector.StartsWith(ServiceLabel + "=", StringComparison.Ordinal))
            {
                await WriteStatusAsync(context, 400, "BadRequest", "this stand-in understands only kubernetes.io/service-name=<name>");
                return;
            }

            service = selector[(ServiceLabel.Length + 1)..];
        }

        if (watch)
        {
            await WatchAsync(context, ns, service);
        }
        else
        {
            await ListAsync(context, ns, service);
        }
    }

    private async Task ListAsync(HttpContext context, string ns, string? service)
    {
        V1EndpointSliceList list;
        lock (_lock)
        {
            list = new V1EndpointSliceList
            {
                ApiVersion = "discovery.k8s.io/v1",
                Kind = "EndpointSliceList",
                Metadata = new V1ListMeta { ResourceVersion = Interlocked.Read(ref _resourceVersion).ToString(CultureInfo.InvariantCulture) },
                Items = [.. _slices.Where(p => p.Key.Namespace == ns && Matches(p.Value, service)).OrderBy(p => p.Key.Name, StringComparer.Ordinal).Select(p => Clone(p.Value))],
            };
        }

        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(list, SourceGenerationContext.Default.V1EndpointSliceList));
    }

    private async Task WatchAsync(HttpContext context, string ns, string? service)
    {
        var query = context.Request.Query;
        var bookmarks = query["allowWatchBookmarks"] == "true";
        var timeout = int.TryParse(query["timeoutSeconds"], NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) && seconds > 0
            ? TimeSpan.FromSeconds(seconds)
            : TimeSpan.FromMinutes(30);
        long from = 0;
        if (query["resourceVersion"].ToString() is { Length: > 0 } rvText && !long.TryParse(rvText, NumberStyles.None, CultureInfo.InvariantCulture, out from))
        {
            await WriteStatusAsync(context, 400, "BadRequest", "resourceVersion must be an integer here");
            return;
        }

        var watcher = new Watcher(context, ns, service);
        var expired = false;
        lock (_lock)
        {
            if (from > 0 && from < Interlocked.Read(ref _compactedBefore) - 1)
            {
                expired = true;
            }
            else
            {
                // Replay what happened after the resourceVersion, then follow live; under the lock, so nothing is lost between.
                foreach (var (rv, type, eventNs, json, eventService) in _history)
                {
                    if (rv > from && eventNs == ns && (service is null || eventService == service))
                    {
                        watcher.Lines.Writer.TryWrite(Line(type, json));
                    }
                }

                _watchers[watcher] = 0;
            }
        }

        if (expired)
        {
            var message = $"too old resource version: {from} ({Interlocked.Read(ref _compactedBefore) - 1})";
            if (GoneAsAnswer)
            {
                await WriteStatusAsync(context, 410, "Expired", message);
                return;
            }

            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(Line("ERROR", StatusJson(410, "Expired", message)) + "\n");
            return;
        }

        try
        {
            context.Response.ContentType = "application/json";
            await context.Response.StartAsync();
            await context.Response.Body.FlushAsync();
            using var end = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
            end.CancelAfter(timeout);
            while (!end.IsCancellationRequested)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(end.Token);
                idle.CancelAfter(BookmarkInterval);
                string line;
                try
                {
                    line = await watcher.Lines.Reader.ReadAsync(idle.Token);
                }
                catch (OperationCanceledException) when (!end.IsCancellationRequested)
                {
                    if (!bookmarks)
                    {
                        continue;
                    }

                    var bookmark = new V1EndpointSlice
                    {
                        ApiVersion = "discovery.k8s.io/v1",
                        Kind = "EndpointSlice",
                        Metadata = new V1ObjectMeta { ResourceVersion = Interlocked.Read(ref _resourceVersion).ToString(CultureInfo.InvariantCulture) },
                    };
                    line = Line("BOOKMARK", JsonSerializer.Serialize(bookmark, SourceGenerationContext.Default.V1EndpointSlice));
                }

                await context.Response.WriteAsync(line + "\n", end.Token);
                await context.Response.Body.FlushAsync(end.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            // timeoutSeconds reached, the client went away, or the connection was cut by a test.
        }
        finally
        {
            _watchers.TryRemove(watcher, out _);
        }
    }

    private void Publish(long rv, string type, string ns, V1EndpointSlice slice)
    {
        var json = JsonSerializer.Serialize(slice, SourceGenerationContext.Default.V1EndpointSlice);
        var service = slice.Metadata?.Labels?.TryGetValue(ServiceLabel, out var name) == true ? name : null;
        _history.Add((rv, type, ns, json, service));
        foreach (var watcher in _watchers.Keys)
        {
            if (watcher.Namespace == ns && (watcher.Service is null || watcher.Service == service))
            {
                watcher.Lines.Writer.TryWrite(Line(type, json));
            }
        }
    }

    private static bool Matches(V1EndpointSlice slice, string? service) =>
        service is null || (slice.Metadata?.Labels?.TryGetValue(ServiceLabel, out var name) == true && name == service);

    private static string Line(string type, string objectJson) => "{\"type\":\"" + type + "\",\"object\":" + objectJson + "}";

    /// <summary>
    /// A <c>Status</c> as the API server writes it. Written by hand: KubernetesClient's <c>V1Status</c> reads this shape
    /// but its converter cannot write (NotImplementedException).
    /// </summary>
    internal static string StatusJson(int code, string reason, string message)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("kind", "Status");
            writer.WriteString("apiVersion", "v1");
            writer.WriteStartObject("metadata");
            writer.WriteEndObject();
            writer.WriteString("status", "Failure");
            writer.WriteString("message", message);
            writer.WriteString("reason", reason);
            writer.WriteNumber("code", code);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static async Task WriteStatusAsync(HttpContext context, int code, string reason, string message)
    {
        context.Response.StatusCode = code;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(StatusJson(code, reason, message), Encoding.UTF8);
    }

    internal static V1EndpointSlice Clone(V1EndpointSlice slice) =>
        JsonSerializer.Deserialize(JsonSerializer.Serialize(slice, SourceGenerationContext.Default.V1EndpointSlice), SourceGenerationContext.Default.V1EndpointSlice)!;

    public async ValueTask DisposeAsync() => await StopAsync();

    private sealed class Watcher(HttpContext context, string ns, string? service)
    {
        public HttpContext Context { get; } = context;

        public string Namespace { get; } = ns;

        public string? Service { get; } = service;

        public System.Threading.Channels.Channel<string> Lines { get; } = System.Threading.Channels.Channel.CreateUnbounded<string>();
    }
}
