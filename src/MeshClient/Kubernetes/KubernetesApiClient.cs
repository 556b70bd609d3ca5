using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using MeshClient.Configuration;
using Microsoft.Extensions.Logging;
using k8s;
using k8s.Models;

namespace MeshClient.Kubernetes;

/// <summary>One event of a watch: its type and, for ADDED/MODIFIED/DELETED, the slice.</summary>
internal readonly record struct KubernetesWatchEvent(string Type, V1EndpointSlice? Slice, string? ResourceVersion);

/// <summary>
/// Speaks the two calls of the Kubernetes API the mesh needs, list and watch of <c>discovery.k8s.io/v1</c>
/// EndpointSlices selected by <c>kubernetes.io/service-name</c>, over HTTP with KubernetesClient's model types and
/// their source-generated JSON context. Its own <see cref="HttpClient"/> (never an IHttpClientFactory client, so no
/// mesh handler or logging handler ever sees a request): the bearer token is added to each request here and
/// nowhere else. Credentials are loaded on first use; a failure to load them is retried with the calls.
/// </summary>
/// <remarks>
/// Speaking HTTP rather than through <c>k8s.Kubernetes</c> keeps the watch protocol in our hands: the resourceVersion
/// to resume from, bookmarks, 410 Gone (as a status or as an ERROR event), a size cap per event, and a watch that
/// ends cleanly at <c>timeoutSeconds</c>; the <c>KubernetesClient.Aot</c> models and context keep it AOT-safe.
/// </remarks>
internal sealed partial class KubernetesApiClient : IDisposable
{
    private const int MaxErrorBodyChars = 512;

    private readonly LastValidOptions<KubernetesOptions> _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Lock _statusLock = new();
    private KubernetesCredentials? _credentials;
    private HttpClient? _http;
    private readonly HashSet<string> _forbidden = new(StringComparer.Ordinal);
    private KubernetesFailureKind? _status;
    private string? _defaultNamespace;
    private bool _disposed;

    public KubernetesApiClient(LastValidOptions<KubernetesOptions> options, TimeProvider timeProvider, ILogger<KubernetesApiClient> logger)
    {
        _options = options;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    public KubernetesOptions Options => _options.Current;

    public TimeProvider TimeProvider => _timeProvider;

    /// <summary>Gets the API server for messages, or a placeholder before the credentials are loaded.</summary>
    public string DisplayServer => Volatile.Read(ref _credentials)?.DisplayServer ?? "(not connected)";

    /// <summary>
    /// Gets the namespace of single-label names: <see cref="KubernetesOptions.Namespace"/>, else the pod's own
    /// (service-account namespace file), else the kubeconfig context's, else <c>default</c>.
    /// </summary>
    public string DefaultNamespace
    {
        get
        {
            if (Options.Namespace is { } configured)
            {
                return configured;
            }

            if (Volatile.Read(ref _defaultNamespace) is { } known)
            {
                return known;
            }

            var ns = KubernetesCredentials.ReadPodNamespace(Options);
            if (ns is null)
            {
                try
                {
                    ns = GetCredentials().DefaultNamespace ?? "default";
                }
                catch (KubernetesException)
                {
                    // Reported by the watches, which retry; the namespace is settled once the credentials load.
                    return "default";
                }
            }

            Volatile.Write(ref _defaultNamespace, ns);
            return ns;
        }
    }

    private KubernetesCredentials GetCredentials()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _credentials ??= KubernetesCredentials.Load(Options);
        }
    }

    private (KubernetesCredentials Credentials, HttpClient Http) GetClient()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _credentials ??= KubernetesCredentials.Load(Options);
            _http ??= new HttpClient(_credentials.CreateHandler(Options.RequestTimeout)) { Timeout = Timeout.InfiniteTimeSpan };
            return (_credentials, _http);
        }
    }

    /// <summary>The collection path of a service's EndpointSlices with its label selector.</summary>
    internal static string SlicesPath(KubernetesServiceName service) =>
        "/apis/discovery.k8s.io/v1/namespaces/" + Uri.EscapeDataString(service.Namespace) + "/endpointslices?labelSelector="
        + Uri.EscapeDataString("kubernetes.io/service-name=" + service.Name);

    /// <summary><c>GET …/endpointslices?labelSelector=kubernetes.io/service-name={name}</c>: every slice of the service.</summary>
    public async Task<V1EndpointSliceList> ListAsync(KubernetesServiceName service, CancellationToken cancellationToken)
    {
        var options = Options;
        using var timeout = new CancellationTokenSource(options.RequestTimeout, _timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        using var response = await SendAsync(service, SlicesPath(service), "list", linked.Token, cancellationToken).ConfigureAwait(false);
        byte[] body;
        try
        {
            body = await ReadBodyAsync(response, options.MaxResponseBytes, service, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw Unreachable(service, "list", $"did not finish answering within {options.RequestTimeout}", null);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            throw Unreachable(service, "list", "dropped the connection", ex);
        }

        V1EndpointSliceList? list;
        try
        {
            list = JsonSerializer.Deserialize(body, SourceGenerationContext.Default.V1EndpointSliceList);
        }
        catch (JsonException ex)
        {
            throw Invalid(service, "list", "malformed JSON: " + Shorten(ex.Message));
        }

        if (list?.Metadata?.ResourceVersion is not { Length: > 0 })
        {
            throw Invalid(service, "list", "no metadata.resourceVersion");
        }

        return list;
    }

    /// <summary>
    /// <c>GET …/endpointslices?labelSelector=…&amp;watch=true&amp;resourceVersion={rv}&amp;allowWatchBookmarks=true&amp;timeoutSeconds=…</c>:
    /// the events after <paramref name="resourceVersion"/>, one JSON object a line, until the server ends the watch.
    /// An ERROR event with a 410 status, or a 410 answer, throws a <see cref="KubernetesException"/> of kind
    /// <see cref="KubernetesFailureKind.Gone"/>.
    /// </summary>
    public async IAsyncEnumerable<KubernetesWatchEvent> WatchAsync(
        KubernetesServiceName service, string resourceVersion, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var options = Options;
        var seconds = (int)Math.Ceiling(options.WatchTimeout.TotalSeconds);
        var path = string.Create(CultureInfo.InvariantCulture, $"{SlicesPath(service)}&watch=true&resourceVersion={Uri.EscapeDataString(resourceVersion)}&allowWatchBookmarks=true&timeoutSeconds={seconds}");

        // The server ends the watch at timeoutSeconds; the client gives it a little more before calling it dead.
        using var timeout = new CancellationTokenSource(options.WatchTimeout + options.RequestTimeout, _timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        using var response = await SendAsync(service, path, "watch", linked.Token, cancellationToken).ConfigureAwait(false);
        Stream stream;
        try
        {
            stream = await response.Content.ReadAsStreamAsync(linked.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            throw Unreachable(service, "watch", "dropped the connection", ex);
        }

        await using (stream.ConfigureAwait(false))
        {
            var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
            var line = new MemoryStream();
            try
            {
                while (true)
                {
                    int read;
                    try
                    {
                        read = await stream.ReadAsync(buffer, linked.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                    {
                        // The server kept the watch open past timeoutSeconds: renew it.
                        yield break;
                    }
                    catch (Exception ex) when (ex is HttpRequestException or IOException)
                    {
                        throw new KubernetesException(KubernetesFailureKind.StreamEnded, $"Kubernetes API server at {DisplayServer} dropped the watch of service {service}.", innerException: new HttpRequestException(Mask(ex.Message)));
                    }

                    if (read == 0)
                    {
                        // The server ended the watch (timeoutSeconds). A partial line is a connection cut mid-event.
                        if (line.Length > 0)
                        {
                            throw new KubernetesException(KubernetesFailureKind.StreamEnded, $"Kubernetes API server at {DisplayServer} ended the watch of service {service} in the middle of an event.");
                        }

                        yield break;
                    }

                    var start = 0;
                    for (var i = 0; i < read; i++)
                    {
                        if (buffer[i] != (byte)'\n')
                        {
                            continue;
                        }

                        line.Write(buffer, start, i - start);
                        start = i + 1;
                        if (line.Length > 0)
                        {
                            var watchEvent = ParseEvent(service, line.GetBuffer().AsSpan(0, (int)line.Length));
                            line.SetLength(0);
                            yield return watchEvent;
                        }
                    }

                    line.Write(buffer, start, read - start);
                    if (line.Length > options.MaxResponseBytes)
                    {
                        throw Invalid(service, "watch", string.Create(CultureInfo.InvariantCulture, $"an event larger than {options.MaxResponseBytes} bytes (Mesh:Kubernetes:MaxResponseBytes)"));
                    }
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>Reads one line of a watch stream (<c>{"type": …, "object": …}</c>).</summary>
    internal KubernetesWatchEvent ParseEvent(KubernetesServiceName service, ReadOnlySpan<byte> line)
    {
        try
        {
            var reader = new Utf8JsonReader(line);
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("type", out var typeElement) || typeElement.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("object", out var objectElement) || objectElement.ValueKind != JsonValueKind.Object)
            {
                throw Invalid(service, "watch", "an event without a type and an object");
            }

            var type = typeElement.GetString()!;
            if (type == "ERROR")
            {
                var status = objectElement.Deserialize(SourceGenerationContext.Default.V1Status);
                if (status?.Code == 410)
                {
                    throw new KubernetesException(KubernetesFailureKind.Gone, $"Kubernetes API server at {DisplayServer}: the watch of service {service} expired (410 {status.Reason}); listing again.", HttpStatusCode.Gone);
                }

                throw new KubernetesException(
                    KindOf(status?.Code ?? 500),
                    string.Create(CultureInfo.InvariantCulture, $"Kubernetes API server at {DisplayServer} ended the watch of service {service} with an error ({status?.Code} {status?.Reason}): {Mask(status?.Message ?? string.Empty)}"));
            }

            var slice = objectElement.Deserialize(SourceGenerationContext.Default.V1EndpointSlice);
            return new KubernetesWatchEvent(type, type == "BOOKMARK" ? null : slice, slice?.Metadata?.ResourceVersion);
        }
        catch (JsonException ex)
        {
            throw Invalid(service, "watch", "a malformed event: " + Shorten(ex.Message));
        }
    }

    private async Task<HttpResponseMessage> SendAsync(KubernetesServiceName service, string path, string verb, CancellationToken linked, CancellationToken cancellationToken)
    {
        var (credentials, http) = GetClient();

        var refresh = false;
        for (var attempt = 0; ; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(credentials.Server, path));
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            if (credentials.Server.Scheme == Uri.UriSchemeHttps)
            {
                request.Version = HttpVersion.Version20;
                request.VersionPolicy = HttpVersionPolicy.RequestVersionOrLower;
            }

            string? token;
            try
            {
                token = await credentials.GetTokenAsync(refresh, linked).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not KubernetesException and not OperationCanceledException)
            {
                throw new KubernetesException(KubernetesFailureKind.Configuration, $"The Kubernetes credentials ({credentials.Source}) gave no token ({ex.GetType().Name}).");
            }

            if (!string.IsNullOrEmpty(token))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }

            HttpResponseMessage response;
            try
            {
                response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw Unreachable(service, verb, $"did not answer within {Options.RequestTimeout}", null);
            }
            catch (HttpRequestException ex)
            {
                throw Unreachable(service, verb, "is unreachable: " + Mask(ex.Message), ex);
            }

            if (response.StatusCode == HttpStatusCode.OK)
            {
                return response;
            }

            using (response)
            {
                if (response.StatusCode == HttpStatusCode.Unauthorized && attempt == 0 && !string.IsNullOrEmpty(token))
                {
                    // The kubelet may have rotated the token since it was read: read it again once.
                    refresh = true;
                    continue;
                }

                throw await FailureAsync(service, verb, credentials, response, linked).ConfigureAwait(false);
            }
        }
    }

    private async Task<KubernetesException> FailureAsync(KubernetesServiceName service, string verb, KubernetesCredentials credentials, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await ReadErrorAsync(response, cancellationToken).ConfigureAwait(false);
        string? message = null;
        try
        {
            message = JsonSerializer.Deserialize(text, SourceGenerationContext.Default.V1Status)?.Message;
        }
        catch (JsonException)
        {
            // Not a Status: a proxy's page. Quoted (masked) below.
        }

        message = Mask(Shorten(message ?? text)).TrimEnd('.');
        var code = (int)response.StatusCode;
        var kind = KindOf(code);
        var answered = string.Create(CultureInfo.InvariantCulture, $"Kubernetes API server at {credentials.DisplayServer} answered {code} {response.ReasonPhrase} to the {verb} of EndpointSlices of service {service}");
        var text2 = kind switch
        {
            KubernetesFailureKind.Forbidden =>
                $"{answered}: the identity ({credentials.Source}) lacks 'list' and 'watch' on 'endpointslices' (API group discovery.k8s.io) in namespace '{service.Namespace}'; grant them with a Role and RoleBinding. The server said: {message}.",
            KubernetesFailureKind.Unauthorized =>
                $"{answered}: the credentials ({credentials.Source}) are not accepted (expired or revoked token, or an unknown certificate). The server said: {message}.",
            KubernetesFailureKind.Gone => $"{answered}: the resourceVersion expired; listing again.",
            _ => string.IsNullOrWhiteSpace(message) ? answered + "." : $"{answered}: {message}.",
        };
        return new KubernetesException(kind, text2, response.StatusCode);
    }

    private static KubernetesFailureKind KindOf(int code) => code switch
    {
        401 => KubernetesFailureKind.Unauthorized,
        403 => KubernetesFailureKind.Forbidden,
        410 => KubernetesFailureKind.Gone,
        429 => KubernetesFailureKind.RateLimited,
        >= 500 => KubernetesFailureKind.ServerError,
        _ => KubernetesFailureKind.Rejected,
    };

    private static async Task<byte[]> ReadBodyAsync(HttpResponseMessage response, int limit, KubernetesServiceName service, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength is long declared && declared > limit)
        {
            throw new KubernetesException(KubernetesFailureKind.InvalidResponse, string.Create(CultureInfo.InvariantCulture, $"The list of EndpointSlices of service {service} is larger than {limit} bytes (Mesh:Kubernetes:MaxResponseBytes)."));
        }

        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
            try
            {
                using var output = new MemoryStream();
                int read;
                while ((read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                {
                    if (output.Length + read > limit)
                    {
                        throw new KubernetesException(KubernetesFailureKind.InvalidResponse, string.Create(CultureInfo.InvariantCulture, $"The list of EndpointSlices of service {service} is larger than {limit} bytes (Mesh:Kubernetes:MaxResponseBytes)."));
                    }

                    output.Write(buffer, 0, read);
                }

                return output.ToArray();
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private static async Task<string> ReadErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                var buffer = new byte[8 * 1024];
                var total = 0;
                int read;
                while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    total += read;
                }

                return Encoding.UTF8.GetString(buffer, 0, total).Trim();
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
        {
            return string.Empty;
        }
    }

    private KubernetesException Unreachable(KubernetesServiceName service, string verb, string what, Exception? inner) =>
        new(KubernetesFailureKind.Unreachable, $"Kubernetes API server at {DisplayServer} {what} ({verb} of EndpointSlices of service {service}).", innerException: inner is null ? null : new HttpRequestException(Mask(inner.Message)));

    private KubernetesException Invalid(KubernetesServiceName service, string verb, string reason) =>
        new(KubernetesFailureKind.InvalidResponse, $"Kubernetes API server at {DisplayServer} answered the {verb} of EndpointSlices of service {service} with {reason}.");

    /// <summary>Masks the token wherever a message could echo it (an error body from a proxy, for example).</summary>
    private string Mask(string text)
    {
        // Only a static token is known without I/O; a file token is masked by its last value.
        var token = Volatile.Read(ref _credentials)?.LastToken;
        return string.IsNullOrEmpty(token) ? text : text.Replace(token, "[token]", StringComparison.Ordinal);
    }

    private static string Shorten(string text) => text.Length <= MaxErrorBodyChars ? text : string.Concat(text.AsSpan(0, MaxErrorBodyChars), "…");

    /// <summary>Notes a successful call; logs once when the API server answers again.</summary>
    public void ReportSuccess(KubernetesServiceName service)
    {
        bool wasForbidden, wasFailing;
        lock (_statusLock)
        {
            wasForbidden = _forbidden.Remove(service.Namespace);
            wasFailing = _status is not null;
            _status = null;
        }

        if (wasFailing)
        {
            Log.Recovered(_logger, DisplayServer);
        }

        if (wasForbidden)
        {
            Log.AllowedAgain(_logger, DisplayServer, service.Namespace);
        }
    }

    /// <summary>
    /// Notes a failed call: each state (unreachable, server errors, rate limits, 401, missing credentials; and a 403,
    /// per namespace) is logged once when it begins, however many watches hit it. A 410 is routine and never logged
    /// here; answers that cannot be used are logged by the watch of their service.
    /// </summary>
    public void ReportFailure(KubernetesException exception, KubernetesServiceName service)
    {
        if (exception.Kind is KubernetesFailureKind.InvalidResponse or KubernetesFailureKind.Gone or KubernetesFailureKind.StreamEnded)
        {
            return;
        }

        lock (_statusLock)
        {
            // A 403 is a state of one namespace (a Role is per namespace); the others are states of the server.
            if (exception.Kind == KubernetesFailureKind.Forbidden ? !_forbidden.Add(service.Namespace) : _status == exception.Kind)
            {
                return;
            }

            if (exception.Kind != KubernetesFailureKind.Forbidden)
            {
                _status = exception.Kind;
            }
        }

        switch (exception.Kind)
        {
            case KubernetesFailureKind.Forbidden when service.Namespace == DefaultNamespace:
                Log.Forbidden(_logger, DisplayServer, service.Namespace, exception.Message);
                break;
            case KubernetesFailureKind.Forbidden:
                // A dotted host (example.com) is also a Service name in another namespace ("com"): most likely not
                // one, so a warning rather than an error; the request falls through to the other providers and DNS.
                Log.ForbiddenElsewhere(_logger, DisplayServer, service.Namespace, service.Name, exception.Message);
                break;
            case KubernetesFailureKind.Unauthorized:
                Log.Unauthorized(_logger, DisplayServer, exception.Message);
                break;
            case KubernetesFailureKind.Configuration:
                Log.NoCredentials(_logger, exception.Message);
                break;
            default:
                Log.Unavailable(_logger, DisplayServer, exception.Kind, exception.Message);
                break;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _http?.Dispose();
            _http = null;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(400, LogLevel.Warning, "Kubernetes API server at {Server} is unavailable ({Kind}). {Reason} Discovered services keep their last known endpoints; retrying with backoff.", EventName = "KubernetesUnavailable")]
        public static partial void Unavailable(ILogger logger, string server, KubernetesFailureKind kind, string reason);

        [LoggerMessage(401, LogLevel.Error, "Kubernetes discovery is forbidden in namespace {Namespace} at {Server}. {Reason} Discovered services keep their last known endpoints; retrying with backoff.", EventName = "KubernetesForbidden")]
        public static partial void Forbidden(ILogger logger, string server, string @namespace, string reason);

        [LoggerMessage(402, LogLevel.Error, "Kubernetes discovery is not authorized at {Server}. {Reason} Discovered services keep their last known endpoints; retrying with backoff.", EventName = "KubernetesUnauthorized")]
        public static partial void Unauthorized(ILogger logger, string server, string reason);

        [LoggerMessage(403, LogLevel.Information, "Kubernetes API server at {Server} answers again.", EventName = "KubernetesRecovered")]
        public static partial void Recovered(ILogger logger, string server);

        [LoggerMessage(405, LogLevel.Warning, "Kubernetes discovery is forbidden in namespace {Namespace} at {Server}: '{Service}.{Namespace}' is treated as a host outside the cluster (grant list and watch on endpointslices there if it is a Service). {Reason}", EventName = "KubernetesForbiddenElsewhere")]
        public static partial void ForbiddenElsewhere(ILogger logger, string server, string @namespace, string service, string reason);

        [LoggerMessage(406, LogLevel.Information, "Kubernetes discovery is allowed again in namespace {Namespace} at {Server}.", EventName = "KubernetesAllowedAgain")]
        public static partial void AllowedAgain(ILogger logger, string server, string @namespace);

        [LoggerMessage(404, LogLevel.Error, "Kubernetes discovery has no usable credentials: {Reason} Retrying with backoff.", EventName = "KubernetesNoCredentials")]
        public static partial void NoCredentials(ILogger logger, string reason);
    }
}
