using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using MeshClient.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshClient.Consul;

/// <summary>The answer to a read: the value and the <c>X-Consul-Index</c> it was read at.</summary>
internal readonly record struct ConsulQueryResult<T>(T Value, ulong Index);

/// <summary>
/// Speaks the subset of the Consul HTTP API the mesh needs, through the factory client
/// <see cref="HttpClientName"/>, which never passes through the mesh handlers. Reads the options on every call,
/// so a reloaded token, datacenter or address applies to the next request.
/// </summary>
internal sealed partial class ConsulClient
{
    public const string HttpClientName = "MeshClient.Consul";

    private const string IndexHeader = "X-Consul-Index";
    private const int MaxErrorBodyChars = 256;

    private readonly IHttpClientFactory _factory;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly string _tokenKey;
    private readonly Lock _statusLock = new();
    private ConsulFailureKind? _status;
    private readonly LastValidOptions<ConsulOptions> _options;

    public ConsulClient(IHttpClientFactory factory, LastValidOptions<ConsulOptions> options, TimeProvider timeProvider, ConsulConfigurationPath path, ILogger<ConsulClient> logger)
    {
        _tokenKey = path.Path + ":Token";
        _factory = factory;
        _timeProvider = timeProvider;
        _logger = logger;

        _options = options;
    }

    /// <summary>Gets the last valid options.</summary>
    public ConsulOptions Options => _options.Current;

    public TimeProvider TimeProvider => _timeProvider;

    /// <summary>Gets the agent address for messages: scheme, host, port and path, never user info or a query.</summary>
    public string DisplayAddress => Describe(Options.Address);

    /// <summary>
    /// <c>GET /v1/health/service/{name}</c>, every instance with its checks (health is filtered by the caller, so that
    /// an empty answer means "Consul does not know the service"). Blocks on <paramref name="index"/> when it is not 0.
    /// </summary>
    public async Task<ConsulQueryResult<ConsulHealthServiceEntry[]>> GetHealthServiceAsync(string service, ulong index, CancellationToken cancellationToken)
    {
        var options = Options;
        var query = new StringBuilder("v1/health/service/").Append(Uri.EscapeDataString(service));
        var separator = '?';
        void Add(string name, string? value)
        {
            query.Append(separator).Append(name).Append('=').Append(Uri.EscapeDataString(value ?? string.Empty));
            separator = '&';
        }

        if (!string.IsNullOrEmpty(options.Datacenter))
        {
            Add("dc", options.Datacenter);
        }

        foreach (var tag in options.Tags)
        {
            Add("tag", tag);
        }

        if (!string.IsNullOrEmpty(options.Namespace))
        {
            Add("ns", options.Namespace);
        }

        if (!string.IsNullOrEmpty(options.Partition))
        {
            Add("partition", options.Partition);
        }

        TimeSpan timeout;
        if (index > 0)
        {
            Add("index", index.ToString(CultureInfo.InvariantCulture));
            Add("wait", ConsulBlockingRules.FormatWait(options.Wait));
            timeout = ConsulBlockingRules.ClientTimeout(options.Wait);
        }
        else
        {
            timeout = options.RequestTimeout;
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, BuildUri(options, query.ToString()));
        var (body, headers) = await SendAsync(options, request, timeout, readBody: true, cancellationToken).ConfigureAwait(false);
        var resultIndex = ParseIndex(headers, request);
        var entries = ReadHealthService(body, $"Consul at {DisplayAddress} answered {Describe(request)}");
        return new(entries, resultIndex);
    }

    /// <summary><c>PUT /v1/agent/service/register</c>.</summary>
    public async Task RegisterAsync(ConsulServiceRegistration registration, CancellationToken cancellationToken)
    {
        var options = Options;
        using var request = new HttpRequestMessage(HttpMethod.Put, BuildUri(options, "v1/agent/service/register"))
        {
            Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(registration, ConsulJsonContext.Default.ConsulServiceRegistration)),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        await SendAsync(options, request, options.RequestTimeout, readBody: false, cancellationToken).ConfigureAwait(false);
    }

    /// <summary><c>GET /v1/agent/service/{id}</c>: whether the local agent still has the service (anti-entropy of self-registration).</summary>
    public async Task<bool> AgentServiceExistsAsync(string serviceId, CancellationToken cancellationToken)
    {
        var options = Options;
        using var request = new HttpRequestMessage(HttpMethod.Get, BuildUri(options, "v1/agent/service/" + Uri.EscapeDataString(serviceId)));
        try
        {
            await SendAsync(options, request, options.RequestTimeout, readBody: false, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ConsulException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    /// <summary><c>PUT /v1/agent/service/deregister/{id}</c>; <see langword="false"/> when the agent does not know the id (404).</summary>
    public Task<bool> DeregisterAsync(string serviceId, CancellationToken cancellationToken) =>
        PutAllowingNotFoundAsync("v1/agent/service/deregister/" + Uri.EscapeDataString(serviceId), cancellationToken);

    /// <summary><c>PUT /v1/agent/check/pass/{id}</c>; <see langword="false"/> when the agent does not know the check (404).</summary>
    public Task<bool> PassTtlAsync(string checkId, string note, CancellationToken cancellationToken) =>
        PutAllowingNotFoundAsync("v1/agent/check/pass/" + Uri.EscapeDataString(checkId) + "?note=" + Uri.EscapeDataString(note), cancellationToken);

    private async Task<bool> PutAllowingNotFoundAsync(string path, CancellationToken cancellationToken)
    {
        var options = Options;
        using var request = new HttpRequestMessage(HttpMethod.Put, BuildUri(options, path));
        try
        {
            await SendAsync(options, request, options.RequestTimeout, readBody: false, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ConsulException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    private async Task<(byte[] Body, HttpResponseHeaders Headers)> SendAsync(
        ConsulOptions options, HttpRequestMessage request, TimeSpan timeout, bool readBody, CancellationToken cancellationToken)
    {
        if (request.RequestUri!.Scheme == Uri.UriSchemeHttps)
        {
            // Consul's HTTPS listener speaks HTTP/2: every watch then shares one connection instead of holding its own
            // (agents cap connections per client IP, 200 by default).
            request.Version = System.Net.HttpVersion.Version20;
            request.VersionPolicy = HttpVersionPolicy.RequestVersionOrLower;
        }

        if (!string.IsNullOrEmpty(options.Token))
        {
            // Not a header yet: the primary handler adds it, below every logging and user handler (see ConsulTokenHandler).
            request.Options.Set(ConsulTokenHandler.TokenOption, options.Token);
        }

        using var timeoutCts = new CancellationTokenSource(timeout, _timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeoutCts.Token);
        var client = _factory.CreateClient(HttpClientName);
        HttpResponseMessage response;
        try
        {
            response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ConsulException(ConsulFailureKind.Unreachable, $"Consul at {DisplayAddress} did not answer {Describe(request)} within {timeout}.");
        }
        catch (HttpRequestException ex)
        {
            throw new ConsulException(ConsulFailureKind.Unreachable, $"Consul at {DisplayAddress} is unreachable ({Describe(request)}): {Mask(ex.Message, options)}", innerException: ex);
        }

        using (response)
        {
            try
            {
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    var text = await ReadErrorAsync(response, linked.Token).ConfigureAwait(false);
                    var kind = (int)response.StatusCode switch
                    {
                        403 => ConsulFailureKind.AccessDenied,
                        429 => ConsulFailureKind.RateLimited,
                        >= 500 => ConsulFailureKind.ServerError,
                        _ => ConsulFailureKind.Rejected,
                    };
                    var body = string.IsNullOrWhiteSpace(text) ? string.Empty : ": " + Mask(text, options);
                    throw new ConsulException(
                        kind,
                        string.Create(CultureInfo.InvariantCulture, $"Consul at {DisplayAddress} answered {(int)response.StatusCode} {response.ReasonPhrase} to {Describe(request)}{body}"),
                        response.StatusCode);
                }

                var bytes = readBody ? await ReadBodyAsync(response, options.MaxResponseBytes, request, linked.Token).ConfigureAwait(false) : [];
                return (bytes, response.Headers);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new ConsulException(ConsulFailureKind.Unreachable, $"Consul at {DisplayAddress} did not finish answering {Describe(request)} within {timeout}.");
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException)
            {
                // The connection dropped while the body was read (for example an agent restart mid-wait).
                throw new ConsulException(ConsulFailureKind.Unreachable, $"Consul at {DisplayAddress} dropped the connection during {Describe(request)}: {Mask(ex.Message, options)}", innerException: ex);
            }
        }
    }

    private async Task<byte[]> ReadBodyAsync(HttpResponseMessage response, int limit, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength is long declared && declared > limit)
        {
            throw TooLarge(request, limit);
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
                        throw TooLarge(request, limit);
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
                var buffer = new byte[MaxErrorBodyChars * 4];
                var total = 0;
                int read;
                while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    total += read;
                }

                var text = Encoding.UTF8.GetString(buffer, 0, total).Trim();
                return text.Length > MaxErrorBodyChars ? text[..MaxErrorBodyChars] + "…" : text;
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            // The status is what matters; a connection closed after it (connlimit 429) leaves no body.
            return string.Empty;
        }
    }

    private ulong ParseIndex(HttpResponseHeaders headers, HttpRequestMessage request)
    {
        if (!headers.TryGetValues(IndexHeader, out var values))
        {
            throw Invalid(request, "the X-Consul-Index header is missing");
        }

        var value = values.FirstOrDefault();
        if (!ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            throw Invalid(request, "the X-Consul-Index header is not an unsigned integer");
        }

        return index;
    }

    /// <summary>
    /// Reads the body of <c>GET /v1/health/service/{name}</c>. Any body that is not a JSON array of entries (malformed,
    /// truncated, wrong-typed, nested deeper than System.Text.Json's limit of 64, invalid UTF-8, <c>null</c>) is
    /// rejected with a <see cref="ConsulException"/> of kind <see cref="ConsulFailureKind.InvalidResponse"/> whose
    /// message starts with <paramref name="answer"/> and says where the JSON went wrong; nothing else escapes.
    /// </summary>
    internal static ConsulHealthServiceEntry[] ReadHealthService(ReadOnlySpan<byte> body, string answer)
    {
        ConsulHealthServiceEntry[]? entries;
        try
        {
            entries = JsonSerializer.Deserialize(body, ConsulJsonContext.Default.ConsulHealthServiceEntryArray);
        }
        catch (JsonException ex)
        {
            // System.Text.Json says what is wrong and where (a value of the wrong type at $[0].Service.Port, a depth
            // beyond 64, an unclosed array) and echoes at most one character of the body, never a value.
            var reason = ex.Message.Length <= MaxErrorBodyChars ? ex.Message : ex.Message[..MaxErrorBodyChars] + "…";
            throw new ConsulException(ConsulFailureKind.InvalidResponse, $"{answer} with malformed JSON: {reason}", innerException: null);
        }

        return entries ?? throw new ConsulException(ConsulFailureKind.InvalidResponse, $"{answer} with an unusable response: the body is JSON null, not an array.");
    }

    private ConsulException Invalid(HttpRequestMessage request, string reason) =>
        new(ConsulFailureKind.InvalidResponse, $"Consul at {DisplayAddress} answered {Describe(request)} with an unusable response: {reason}.");

    private ConsulException TooLarge(HttpRequestMessage request, int limit) =>
        new(ConsulFailureKind.InvalidResponse, string.Create(CultureInfo.InvariantCulture,
            $"Consul at {DisplayAddress} answered {Describe(request)} with a body larger than {limit} bytes (Mesh:Consul:MaxResponseBytes)."));

    /// <summary>Notes a successful call; logs once when Consul comes back.</summary>
    public void ReportSuccess()
    {
        lock (_statusLock)
        {
            if (_status is null)
            {
                return;
            }

            _status = null;
        }

        Log.Recovered(_logger, DisplayAddress);
    }

    /// <summary>
    /// Notes a failed call. Reachability, server errors, rate limits and ACL refusals are states of the agent: each
    /// is logged once when it begins, however many watches hit it; answers that cannot be used are logged by the
    /// watch of the service they concern.
    /// </summary>
    public void ReportFailure(ConsulException exception)
    {
        if (exception.Kind is ConsulFailureKind.InvalidResponse)
        {
            return;
        }

        lock (_statusLock)
        {
            if (_status == exception.Kind)
            {
                return;
            }

            _status = exception.Kind;
        }

        if (exception.Kind == ConsulFailureKind.AccessDenied)
        {
            Log.AccessDenied(_logger, DisplayAddress, _tokenKey, exception.Message);
        }
        else
        {
            Log.Unavailable(_logger, DisplayAddress, exception.Kind, exception.Message);
        }
    }

    private static Uri BuildUri(ConsulOptions options, string relative)
    {
        var address = options.Address;
        return new Uri(address.EndsWith('/') ? address + relative : address + "/" + relative, UriKind.Absolute);
    }

    private static string Describe(HttpRequestMessage request) =>
        request.Method.Method + " " + (request.RequestUri?.AbsolutePath ?? string.Empty);

    internal static string Describe(string address) =>
        Uri.TryCreate(address, UriKind.Absolute, out var uri)
            ? uri.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped).TrimEnd('/')
            : "(invalid address)";

    /// <summary>Masks the token wherever a message could echo it (an error body from a proxy, for example).</summary>
    internal static string Mask(string text, ConsulOptions options) =>
        string.IsNullOrEmpty(options.Token) ? text : text.Replace(options.Token, "[token]", StringComparison.Ordinal);

    private static partial class Log
    {
        [LoggerMessage(300, LogLevel.Warning, "Consul at {Address} is unavailable ({Kind}): {Reason} Discovered services keep their last known endpoints; retrying with backoff.", EventName = "ConsulUnavailable")]
        public static partial void Unavailable(ILogger logger, string address, ConsulFailureKind kind, string reason);

        [LoggerMessage(301, LogLevel.Error, "Consul at {Address} refused the ACL token configured in {TokenKey} (403): {Reason} Check the token and its policy (service:read, node:read; service:write to register). Discovered services keep their last known endpoints; retrying with backoff.", EventName = "ConsulAccessDenied")]
        public static partial void AccessDenied(ILogger logger, string address, string tokenKey, string reason);

        [LoggerMessage(302, LogLevel.Information, "Consul at {Address} answers again.", EventName = "ConsulRecovered")]
        public static partial void Recovered(ILogger logger, string address);
    }
}
