using System.Collections.Concurrent;
using System.IO.Compression;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace MeshClient.ConsulServer;

/// <summary>A request the server received (the ACL token is never recorded).</summary>
public sealed record ConsulRequestRecord(string Method, string Path, string Query, DateTimeOffset At, bool HadToken, string Protocol);

/// <summary>
/// A Consul-compatible HTTP API server on Kestrel (127.0.0.1, port 0 by default) for tests, faithful to
/// reference/consul-http-api.md: health and catalog reads with real blocking semantics and headers, the agent
/// service and check endpoints, ACL enforcement with Consul's 403 bodies, and fault injection. Its state survives
/// <see cref="StopAsync"/> / <see cref="StartAsync()"/> (an agent restart with its data dir).
/// </summary>
public sealed class ConsulTestServer : IAsyncDisposable
{
    private const string AnonymousAccessor = "00000000-0000-0000-0000-000000000002";
    private static readonly string[] GetMethods = ["GET"];
    private static readonly string[] PutMethods = ["PUT"];

    private readonly ConsulServerOptions _options;
    private readonly ConsulState _state;
    private readonly ConcurrentQueue<ConsulRequestRecord> _requests = new();
    private readonly ConcurrentDictionary<HttpContext, byte> _waiting = new();
    private WebApplication? _app;
    private CancellationTokenSource _running = new();
    private int _openConnections;
    private int _totalConnections;

    private ConsulTestServer(ConsulServerOptions options)
    {
        _options = options;
        _state = new ConsulState(options);
        Port = options.Port;
    }

    /// <summary>Gets the port (fixed after the first start).</summary>
    public int Port { get; private set; }

    /// <summary>Gets the base address, for example <c>http://127.0.0.1:53211</c>.</summary>
    public Uri Address => new($"{(_options.Certificate is null ? "http" : "https")}://127.0.0.1:{Port}");

    public ConsulFaultSettings Faults { get; } = new();

    public ConsulServerOptions Options => _options;

    public bool IsRunning => _app is not null;

    /// <summary>Gets the current raft index.</summary>
    public ulong Index => _state.Index;

    public IReadOnlyCollection<ConsulRequestRecord> Requests => _requests;

    /// <summary>Gets the number of TCP connections open now.</summary>
    public int OpenConnections => Volatile.Read(ref _openConnections);

    /// <summary>Gets the number of TCP connections accepted so far.</summary>
    public int TotalConnections => Volatile.Read(ref _totalConnections);

    /// <summary>Gets the number of blocking queries waiting now.</summary>
    public int WaitingQueries => _waiting.Count;

    public int CountRequests(string pathPrefix) => _requests.Count(r => r.Path.StartsWith(pathPrefix, StringComparison.Ordinal));

    public static async Task<ConsulTestServer> StartAsync(ConsulServerOptions? options = null)
    {
        var server = new ConsulTestServer(options ?? new ConsulServerOptions());
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

        _running = new CancellationTokenSource();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxConcurrentConnections = null;
            k.Listen(IPAddress.Loopback, Port, listen =>
            {
                listen.Use(next => async connection =>
                {
                    Interlocked.Increment(ref _openConnections);
                    Interlocked.Increment(ref _totalConnections);
                    try
                    {
                        await next(connection);
                    }
                    finally
                    {
                        Interlocked.Decrement(ref _openConnections);
                    }
                });
                if (_options.Certificate is { } certificate)
                {
                    listen.Protocols = HttpProtocols.Http1AndHttp2;
                    listen.UseHttps(new HttpsConnectionAdapterOptions
                    {
                        ServerCertificate = certificate,
                        ClientCertificateMode = _options.ClientCertificateAuthority is null ? ClientCertificateMode.NoCertificate : ClientCertificateMode.RequireCertificate,
                        ClientCertificateValidation = (cert, _, _) => ValidateClientCertificate(cert),
                    });
                }
            });
        });
        var app = builder.Build();
        app.Run(HandleAsync);
        await app.StartAsync();
        var address = app.Urls.First();
        Port = new Uri(address).Port;
        _app = app;
    }

    /// <summary>
    /// Stops listening: new connections are refused and blocked queries are cut (as an agent that goes down).
    /// The catalog is kept for <see cref="StartAsync()"/>.
    /// </summary>
    public async Task StopAsync()
    {
        var app = _app;
        if (app is null)
        {
            return;
        }

        _app = null;
        DropWaitingQueries();
        await _running.CancelAsync();
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

    /// <summary>Registers a service on the agent node (as <c>PUT /v1/agent/service/register</c>, without ACLs).</summary>
    public void Register(ServiceDefinition definition, bool replaceExistingChecks = false)
    {
        var error = _state.Register(definition, replaceExistingChecks);
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(definition));
        }
    }

    /// <summary>Registers a service on another node (see <see cref="AddNode"/>), as a catalog write would.</summary>
    public void RegisterOnNode(string node, ServiceDefinition definition)
    {
        var error = _state.Register(definition, replaceExistingChecks: false, node);
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(definition));
        }
    }

    public void AddNode(string name, string address, Dictionary<string, string>? meta = null) => _state.AddNode(name, address, meta);

    public bool Deregister(string serviceId) => _state.Deregister(serviceId);

    public bool SetCheckStatus(string checkId, string status, string output = "") => _state.SetCheckStatus(checkId, status, output);

    public bool SetMaintenance(string serviceId, bool enable, string? reason = null) => _state.SetMaintenance(serviceId, enable, reason);

    /// <summary>The agent forgets its services (restarted without its data dir).</summary>
    public void ForgetAgentServices() => _state.ForgetAgentServices();

    /// <summary>Makes the index go backwards (snapshot restore) and wakes blocked queries.</summary>
    public void ResetIndex(ulong index = 2) => _state.ResetIndex(index);

    /// <summary>An idempotent write that bumps the service's index without changing its data.</summary>
    public void Touch(string serviceId) => _state.Touch(serviceId);

    public ulong ServiceIndex(string name) => _state.ServiceIndex(name);

    /// <summary>Cuts the connection of every blocked query (mid-wait).</summary>
    public void DropWaitingQueries()
    {
        foreach (var context in _waiting.Keys)
        {
            try
            {
                context.Abort();
            }
            catch (ObjectDisposedException)
            {
                // The request ended meanwhile.
            }
        }
    }

    public void ClearRequests() => _requests.Clear();

    // ------------------------------------------------------------------ HTTP

    private bool ValidateClientCertificate(X509Certificate2 certificate)
    {
        if (_options.ClientCertificateAuthority is not { } authority)
        {
            return true;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;
        var path = request.Path.Value ?? "/";
        var token = ResolveToken(request);
        _requests.Enqueue(new ConsulRequestRecord(request.Method, path, RedactedQuery(request), _options.TimeProvider.GetUtcNow(), token is not null, request.Protocol));

        var (fault, delay) = Faults.For(path);
        if (fault == ConsulFault.EchoTokenInError)
        {
            await TextAsync(context, 502, $"upstream refused token {token}");
            return;
        }

        if (await ApplyFaultBeforeAnswerAsync(context, fault, delay))
        {
            return;
        }

        response.Headers["Vary"] = "Accept-Encoding";
        if (!path.StartsWith("/v1/", StringComparison.Ordinal))
        {
            response.StatusCode = 404;
            return;
        }

        response.Headers["X-Consul-Default-Acl-Policy"] = _options.AclEnabled ? _options.AclDefaultPolicy : "allow";
        var route = Route(path);
        if (route is null)
        {
            await TextAsync(context, 404, "Invalid URL path: not a recognized HTTP API endpoint\n");
            return;
        }

        var (methods, handler) = route.Value;
        var allow = "OPTIONS," + string.Join(',', methods);
        if (HttpMethods.IsOptions(request.Method))
        {
            response.Headers.Allow = allow;
            response.StatusCode = 200;
            return;
        }

        if (!methods.Contains(request.Method))
        {
            response.Headers.Allow = allow;
            await TextAsync(context, 405, $"method {request.Method} not allowed");
            return;
        }

        var auth = Authorize(token);
        if (auth is null)
        {
            await TextAsync(context, 403, "ACL not found");
            return;
        }

        try
        {
            await handler(context, auth, fault);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested || _running.IsCancellationRequested)
        {
            context.Abort();
        }
    }

    private (string[] Methods, Func<HttpContext, Auth, ConsulFault, Task> Handler)? Route(string path)
    {
        static bool Under(string path, string prefix, out string rest)
        {
            var match = path.StartsWith(prefix, StringComparison.Ordinal);
            rest = match ? Uri.UnescapeDataString(path[prefix.Length..]) : string.Empty;
            return match;
        }

        if (Under(path, "/v1/health/service/", out var name))
        {
            return (GetMethods, (c, a, f) => HealthServiceAsync(c, a, f, name));
        }

        if (path == "/v1/catalog/services")
        {
            return (GetMethods, CatalogServicesAsync);
        }

        if (Under(path, "/v1/catalog/service/", out name))
        {
            return (GetMethods, (c, a, f) => CatalogServiceAsync(c, a, f, name));
        }

        if (path == "/v1/agent/services")
        {
            return (GetMethods, (c, a, f) => JsonAsync(c, _state.ReadAgentServices(a.CanRead, IsPretty(c)), index: null, f));
        }

        if (path == "/v1/agent/checks")
        {
            return (GetMethods, (c, a, f) => JsonAsync(c, _state.ReadAgentChecks(a.CanRead, IsPretty(c)), index: null, f));
        }

        if (path == "/v1/agent/service/register")
        {
            return (PutMethods, RegisterAsync);
        }

        if (Under(path, "/v1/agent/service/deregister/", out var id))
        {
            return (PutMethods, (c, a, _) => DeregisterAsync(c, a, id));
        }

        if (Under(path, "/v1/agent/service/maintenance/", out id))
        {
            return (PutMethods, (c, a, _) => MaintenanceAsync(c, a, id));
        }

        if (Under(path, "/v1/agent/service/", out id))
        {
            return (GetMethods, (c, a, f) => AgentServiceAsync(c, a, f, id));
        }

        foreach (var (verb, status) in new[] { ("pass", "passing"), ("warn", "warning"), ("fail", "critical") })
        {
            if (Under(path, $"/v1/agent/check/{verb}/", out id))
            {
                return (PutMethods, (c, a, _) => CheckTtlAsync(c, a, id, status, c.Request.Query["note"].ToString()));
            }
        }

        if (Under(path, "/v1/agent/check/update/", out id))
        {
            return (PutMethods, (c, a, _) => CheckUpdateAsync(c, a, id));
        }

        if (path == "/v1/status/leader")
        {
            return (GetMethods, (c, _, _) => JsonAsync(c, Encoding.UTF8.GetBytes("\"127.0.0.1:8300\""), index: null, ConsulFault.None));
        }

        return null;
    }

    // ------------------------------------------------------------------ reads

    private async Task HealthServiceAsync(HttpContext context, Auth auth, ConsulFault fault, string name)
    {
        if (name.Length == 0)
        {
            await TextAsync(context, 400, "Missing service name");
            return;
        }

        var query = context.Request.Query;
        if (!TryParseBool(query, "passing", out var passing))
        {
            await TextAsync(context, 400, "Invalid value for ?passing");
            return;
        }

        var parameters = await ParseReadParametersAsync(context);
        if (parameters is null)
        {
            return;
        }

        var nodeMeta = query["node-meta"].Select(v => v ?? string.Empty)
            .Select(v => v.IndexOf(':', StringComparison.Ordinal) is var i and >= 0 ? (v[..i], v[(i + 1)..]) : (v, string.Empty)).ToList();
        Func<HealthView, bool>? filter = null;
        if (query.TryGetValue("filter", out var filterText) && !string.IsNullOrWhiteSpace(filterText))
        {
            filter = HealthFilter.TryCreate(filterText.ToString(), out var error);
            if (filter is null)
            {
                await TextAsync(context, 500, "Failed to create boolean expression evaluator: " + error);
                return;
            }
        }

        var tags = query["tag"].Select(t => t ?? string.Empty).ToList();
        await BlockAsync(context, parameters.Value, () => _state.ServiceIndex(name));
        var (json, index, filtered) = _state.ReadHealth(name, tags, passing, nodeMeta, filter, auth.CanRead, IsPretty(context));
        SetQueryMeta(context, parameters.Value, filtered && auth.TokenPresented);
        await JsonAsync(context, json, index, fault);
    }

    private async Task CatalogServiceAsync(HttpContext context, Auth auth, ConsulFault fault, string name)
    {
        if (name.Length == 0)
        {
            await TextAsync(context, 400, "Missing service name");
            return;
        }

        var parameters = await ParseReadParametersAsync(context);
        if (parameters is null)
        {
            return;
        }

        var tags = context.Request.Query["tag"].Select(t => t ?? string.Empty).ToList();
        await BlockAsync(context, parameters.Value, () => _state.ServiceIndex(name));
        var (json, index, filtered) = _state.ReadCatalogService(name, tags, auth.CanRead, IsPretty(context));
        SetQueryMeta(context, parameters.Value, filtered && auth.TokenPresented);
        await JsonAsync(context, json, index, fault);
    }

    private async Task CatalogServicesAsync(HttpContext context, Auth auth, ConsulFault fault)
    {
        var parameters = await ParseReadParametersAsync(context);
        if (parameters is null)
        {
            return;
        }

        await BlockAsync(context, parameters.Value, () => _state.Index);
        var (json, index, filtered) = _state.ReadCatalogServices(auth.CanRead, IsPretty(context));
        SetQueryMeta(context, parameters.Value, filtered && auth.TokenPresented);
        await JsonAsync(context, json, index, fault);
    }

    private async Task AgentServiceAsync(HttpContext context, Auth auth, ConsulFault fault, string id)
    {
        if (id.Length == 0)
        {
            await TextAsync(context, 400, "Missing service ID");
            return;
        }

        if (!_state.TryGetAgentService(id, out var name))
        {
            await TextAsync(context, 404, $"unknown service ID: {id}");
            return;
        }

        if (!auth.CanRead)
        {
            await TextAsync(context, 403, PermissionDenied(auth, "service:read", name));
            return;
        }

        var json = _state.ReadAgentService(id, IsPretty(context))!;
        context.Response.Headers["X-Consul-Contenthash"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(json))[..16];
        await JsonAsync(context, json, index: null, fault);
    }

    private readonly record struct ReadParameters(ulong Index, TimeSpan Wait, string Consistency, bool Cached);

    private async Task<ReadParameters?> ParseReadParametersAsync(HttpContext context)
    {
        var query = context.Request.Query;
        if (query.TryGetValue("dc", out var dc) && !string.IsNullOrEmpty(dc) && dc != _options.Datacenter)
        {
            await TextAsync(context, 500, "No path to datacenter");
            return null;
        }

        foreach (var (param, feature) in new[] { ("ns", "Namespaces"), ("partition", "Partitions") })
        {
            if (query.ContainsKey(param) && !_options.Enterprise)
            {
                await TextAsync(context, 400, $"Invalid query parameter: \"{param}\" - {feature} are a Consul Enterprise feature");
                return null;
            }
        }

        if (context.Request.Headers.ContainsKey("X-Consul-Namespace") && !_options.Enterprise)
        {
            await TextAsync(context, 400, "Invalid header: \"X-Consul-Namespace\" - Namespaces are a Consul Enterprise feature");
            return null;
        }

        var wait = TimeSpan.Zero;
        if (query.TryGetValue("wait", out var waitText) && !GoDuration.TryParse(waitText.ToString(), out wait))
        {
            await TextAsync(context, 400, "Invalid wait time");
            return null;
        }

        ulong index = 0;
        if (query.TryGetValue("index", out var indexText) && !ulong.TryParse(indexText.ToString(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out index))
        {
            await TextAsync(context, 400, "Invalid index");
            return null;
        }

        var stale = query.ContainsKey("stale");
        var consistent = query.ContainsKey("consistent");
        var cached = query.ContainsKey("cached");
        if (query.TryGetValue("max_stale", out var maxStale))
        {
            if (!GoDuration.TryParse(maxStale.ToString(), out var maxStaleValue))
            {
                await TextAsync(context, 400, $"Invalid max_stale value \"{maxStale}\"");
                return null;
            }

            stale |= maxStaleValue > TimeSpan.Zero;
        }

        if (stale && consistent)
        {
            await TextAsync(context, 400, "Cannot specify ?stale with ?consistent, conflicting semantics.");
            return null;
        }

        if (cached && consistent)
        {
            await TextAsync(context, 400, "Cannot specify ?cached with ?consistent, conflicting semantics.");
            return null;
        }

        return new ReadParameters(index, wait, stale ? "stale" : consistent ? "consistent" : "leader", cached);
    }

    /// <summary>
    /// §2.2: index absent or 0 answers at once; otherwise wait until the index exceeds it, or
    /// <c>min(wait or default, max) + rand(wait / 16)</c>, and answer with the current (maybe unchanged) index.
    /// </summary>
    private async Task BlockAsync(HttpContext context, ReadParameters parameters, Func<ulong> index)
    {
        if (parameters.Index == 0)
        {
            return;
        }

        var wait = parameters.Wait <= TimeSpan.Zero ? _options.DefaultQueryTime : parameters.Wait;
        if (wait > _options.MaxQueryTime)
        {
            wait = _options.MaxQueryTime;
        }

        wait += _state.Jitter(wait);
        _waiting[context] = 0;
        try
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _running.Token);
            await _state.WaitAsync(index, parameters.Index, wait, linked.Token);
        }
        finally
        {
            _waiting.TryRemove(context, out _);
        }
    }

    private static void SetQueryMeta(HttpContext context, ReadParameters parameters, bool filteredByAcls)
    {
        var headers = context.Response.Headers;
        headers["X-Consul-Effective-Consistency"] = parameters.Consistency;
        headers["X-Consul-Knownleader"] = "true";
        headers["X-Consul-Lastcontact"] = "0";
        headers["X-Consul-Query-Backend"] = "blocking-query";
        if (filteredByAcls)
        {
            headers["X-Consul-Results-Filtered-By-Acls"] = "true";
        }

        if (parameters.Cached)
        {
            headers["X-Cache"] = "HIT";
            headers["Age"] = "0";
        }
    }

    // ------------------------------------------------------------------ writes

    private async Task RegisterAsync(HttpContext context, Auth auth, ConsulFault fault)
    {
        ServiceDefinition definition;
        try
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            definition = RegistrationParser.Parse(document.RootElement);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException)
        {
            await TextAsync(context, 400, "Request decode failed: " + ex.Message);
            return;
        }

        if (!string.IsNullOrEmpty(definition.Name) && !auth.CanWrite)
        {
            await TextAsync(context, 403, PermissionDenied(auth, "service:write", definition.Name));
            return;
        }

        var replace = context.Request.Query.TryGetValue("replace-existing-checks", out var replaceText)
            && (replaceText.ToString().Length == 0 || bool.TryParse(replaceText, out var r) && r);
        var error = _state.Register(definition, replace);
        if (error is not null)
        {
            await TextAsync(context, 400, error);
            return;
        }

        context.Response.StatusCode = 200;
    }

    private async Task DeregisterAsync(HttpContext context, Auth auth, string id)
    {
        if (id.Length == 0)
        {
            await TextAsync(context, 400, "Missing service ID");
            return;
        }

        if (!_state.TryGetAgentService(id, out var name))
        {
            await TextAsync(context, 404, $"Unknown service ID \"{id}\". Ensure that the service ID is passed, not the service name.");
            return;
        }

        if (!auth.CanWrite)
        {
            await TextAsync(context, 403, PermissionDenied(auth, "service:write", name));
            return;
        }

        _state.Deregister(id);
        context.Response.StatusCode = 200;
    }

    private async Task MaintenanceAsync(HttpContext context, Auth auth, string id)
    {
        if (id.Length == 0)
        {
            await TextAsync(context, 400, "Missing service ID");
            return;
        }

        var query = context.Request.Query;
        if (!query.TryGetValue("enable", out var enableText))
        {
            await TextAsync(context, 400, "Missing value for enable");
            return;
        }

        if (!TryParseGoBool(enableText.ToString(), out var enable))
        {
            await TextAsync(context, 400, $"Invalid value for enable: \"{enableText}\"");
            return;
        }

        if (!_state.TryGetAgentService(id, out var name))
        {
            await TextAsync(context, 404, $"Unknown service ID \"{id}\". Ensure that the service ID is passed, not the service name.");
            return;
        }

        if (!auth.CanWrite)
        {
            await TextAsync(context, 403, PermissionDenied(auth, "service:write", name));
            return;
        }

        _state.SetMaintenance(id, enable, query["reason"].ToString());
        context.Response.StatusCode = 200;
    }

    private async Task CheckTtlAsync(HttpContext context, Auth auth, string id, string status, string note)
    {
        if (!await VetCheckAsync(context, auth, id))
        {
            return;
        }

        await AnswerCheckUpdateAsync(context, id, _state.UpdateTtl(id, status, note));
    }

    private async Task CheckUpdateAsync(HttpContext context, Auth auth, string id)
    {
        string? status;
        string? output;
        try
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            status = RegistrationParser.GetString(document.RootElement, "Status");
            output = RegistrationParser.GetString(document.RootElement, "Output");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            await TextAsync(context, 400, "Request decode failed: " + ex.Message);
            return;
        }

        if (status is not ("passing" or "warning" or "critical"))
        {
            await TextAsync(context, 400, $"Invalid check status: '{status}'");
            return;
        }

        if (!await VetCheckAsync(context, auth, id))
        {
            return;
        }

        await AnswerCheckUpdateAsync(context, id, _state.UpdateTtl(id, status, output));
    }

    private async Task<bool> VetCheckAsync(HttpContext context, Auth auth, string id)
    {
        var serviceName = _state.ServiceNameOfCheck(id, out var exists);
        if (!exists)
        {
            await TextAsync(context, 404, $"Unknown check ID \"{id}\". Ensure that the check ID is passed, not the check name.");
            return false;
        }

        if (!auth.CanWrite)
        {
            await TextAsync(context, 403, string.IsNullOrEmpty(serviceName)
                ? PermissionDenied(auth, "node:write", _state.AgentNode)
                : PermissionDenied(auth, "service:write", serviceName));
            return false;
        }

        return true;
    }

    private static Task AnswerCheckUpdateAsync(HttpContext context, string id, CheckUpdateResult result) => result switch
    {
        CheckUpdateResult.NotFound => TextAsync(context, 404, $"Unknown check ID \"{id}\". Ensure that the check ID is passed, not the check name."),

        // [unverified exact text] agent updateTTLCheck.
        CheckUpdateResult.NotTtl => TextAsync(context, 500, $"CheckID \"{id}\" does not have associated TTL"),
        _ => SetOk(context),
    };

    private static Task SetOk(HttpContext context)
    {
        context.Response.StatusCode = 200;
        return Task.CompletedTask;
    }

    // ------------------------------------------------------------------ ACL

    private sealed record Auth(string AccessorId, bool CanRead, bool CanWrite, bool TokenPresented);

    private static string? ResolveToken(HttpRequest request)
    {
        // agent/http.go parseTokenInternal: ?token= > X-Consul-Token > Authorization: Bearer.
        if (request.Query.TryGetValue("token", out var query) && !StringValues.IsNullOrEmpty(query))
        {
            return query.ToString();
        }

        if (request.Headers.TryGetValue("X-Consul-Token", out var header) && !StringValues.IsNullOrEmpty(header))
        {
            return header.ToString();
        }

        var authorization = request.Headers.Authorization.ToString();
        var parts = authorization.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return parts.Length == 2 && string.Equals(parts[0], "bearer", StringComparison.OrdinalIgnoreCase) ? parts[1] : null;
    }

    private Auth? Authorize(string? token)
    {
        if (!_options.AclEnabled)
        {
            return new Auth(AnonymousAccessor, true, true, token is not null);
        }

        if (token is null)
        {
            var allow = string.Equals(_options.AclDefaultPolicy, "allow", StringComparison.OrdinalIgnoreCase);
            return new Auth(AnonymousAccessor, allow, allow, false);
        }

        var known = _options.AclTokens.FirstOrDefault(t => t.SecretId == token);
        return known is null ? null : new Auth(known.AccessorId, known.CanRead, known.CanWrite, true);
    }

    private static string PermissionDenied(Auth auth, string permission, string resource) =>
        $"Permission denied: token with AccessorID '{auth.AccessorId}' lacks permission '{permission}' on \"{resource}\"";

    // ------------------------------------------------------------------ faults and writing

    private async Task<bool> ApplyFaultBeforeAnswerAsync(HttpContext context, ConsulFault fault, TimeSpan delay)
    {
        switch (fault)
        {
            case ConsulFault.NoClusterLeader:
                if (delay > TimeSpan.Zero)
                {
                    await Task.Delay(delay, context.RequestAborted);
                }

                await TextAsync(context, 500, "No cluster leader");
                return true;
            case ConsulFault.RpcError:
                await TextAsync(context, 500, "rpc error making call: EOF");
                return true;
            case ConsulFault.TooManyRequests:
                context.Response.StatusCode = 429;
                return true;
            case ConsulFault.ConnectionLimit:
                context.Response.StatusCode = 429;
                context.Response.Headers.Connection = "close";
                context.Response.ContentType = "text/plain";
                var limitBody = "Your IP is issuing too many concurrent connections, please rate limit your calls\n"u8.ToArray();
                context.Response.ContentLength = limitBody.Length;
                await context.Response.Body.WriteAsync(limitBody);
                return true;
            case ConsulFault.ServiceUnavailable:
                await TextAsync(context, 503, "rate limit exceeded for operation that can only be performed by the leader, try again later");
                return true;
            case ConsulFault.DropConnection:
                context.Abort();
                return true;
            default:
                return false;
        }
    }

    private static async Task TextAsync(HttpContext context, int status, string text)
    {
        // Go's net/http sends a Content-Length for a body this small (no chunking).
        var bytes = Encoding.UTF8.GetBytes(text);
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        context.Response.ContentLength = bytes.Length;
        await context.Response.Body.WriteAsync(bytes);
    }

    private async Task JsonAsync(HttpContext context, byte[] json, ulong? index, ConsulFault fault)
    {
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "application/json";
        if (index is { } value)
        {
            response.Headers["X-Consul-Index"] = fault switch
            {
                ConsulFault.MalformedIndex => "not-a-number",
                ConsulFault.ZeroIndex => "0",
                _ => Math.Max(value, 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
            };
        }

        switch (fault)
        {
            case ConsulFault.MalformedBody:
                json = json.Length > 2 ? json[..(json.Length / 2)] : "[{\"Node\":"u8.ToArray();
                break;
            case ConsulFault.HugeBody:
                await WriteHugeAsync(context);
                return;
            case ConsulFault.Body:
                json = Faults.Body;
                break;
        }

        var gzip = context.Request.Headers.AcceptEncoding.ToString().Contains("gzip", StringComparison.OrdinalIgnoreCase);
        if (gzip)
        {
            using var buffer = new MemoryStream();
            await using (var compress = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true))
            {
                await compress.WriteAsync(json);
            }

            json = buffer.ToArray();
            response.Headers.ContentEncoding = "gzip";
        }

        if (fault == ConsulFault.Slow)
        {
            var delay = Faults.Delay;
            await Task.Delay(delay, context.RequestAborted);
            await response.StartAsync(context.RequestAborted);
            await response.Body.WriteAsync(json.AsMemory(0, json.Length / 2), context.RequestAborted);
            await response.Body.FlushAsync(context.RequestAborted);
            await Task.Delay(delay, context.RequestAborted);
            await response.Body.WriteAsync(json.AsMemory(json.Length / 2), context.RequestAborted);
            return;
        }

        response.ContentLength = json.Length;
        await response.Body.WriteAsync(json, context.RequestAborted);
    }

    /// <summary>A valid JSON array of one entry whose Meta value is huge, sent chunked (no Content-Length).</summary>
    private async Task WriteHugeAsync(HttpContext context)
    {
        var body = context.Response.Body;
        await body.WriteAsync("[{\"Node\":{\"Node\":\"huge\",\"Address\":\"127.0.0.1\"},\"Service\":{\"ID\":\"huge\",\"Service\":\"huge\",\"Port\":1,\"Meta\":{\"pad\":\""u8.ToArray(), context.RequestAborted);
        var chunk = new byte[64 * 1024];
        Array.Fill(chunk, (byte)'x');
        for (var written = 0; written < Faults.HugeBodyBytes; written += chunk.Length)
        {
            await body.WriteAsync(chunk, context.RequestAborted);
        }

        await body.WriteAsync("\"}},\"Checks\":[]}]"u8.ToArray(), context.RequestAborted);
    }

    private static bool IsPretty(HttpContext context) => context.Request.Query.ContainsKey("pretty");

    /// <summary>Go's <c>strconv.ParseBool</c>; a present-but-empty <c>?name</c> is true.</summary>
    private static bool TryParseBool(IQueryCollection query, string name, out bool value)
    {
        value = false;
        if (!query.TryGetValue(name, out var text))
        {
            return true;
        }

        var s = text.ToString();
        if (s.Length == 0)
        {
            value = true;
            return true;
        }

        return TryParseGoBool(s, out value);
    }

    private static bool TryParseGoBool(string s, out bool value)
    {
        switch (s)
        {
            case "1" or "t" or "T" or "TRUE" or "true" or "True":
                value = true;
                return true;
            case "0" or "f" or "F" or "FALSE" or "false" or "False":
                value = false;
                return true;
            default:
                value = false;
                return false;
        }
    }

    private static string RedactedQuery(HttpRequest request)
    {
        if (!request.Query.ContainsKey("token"))
        {
            return request.QueryString.Value ?? string.Empty;
        }

        return "?" + string.Join('&', request.Query.Select(p => p.Key == "token" ? "token=redacted" : $"{p.Key}={p.Value}"));
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _state.Dispose();
        _running.Dispose();
    }
}
