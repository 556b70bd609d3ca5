using System.Globalization;
using System.Net;
using MeshClient.Model;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MeshClient.Consul;

/// <summary>
/// Self-registration (<c>Mesh:Consul:Registration</c>): registers the service once the host has started (when the
/// server's addresses are known), retries with backoff while Consul is down, heartbeats the TTL check, registers
/// again when the agent forgot the service (404 on a heartbeat, or on the periodic check of an HTTP-checked
/// service), and deregisters as soon as the host begins to stop, before the server drains.
/// </summary>
internal sealed partial class ConsulRegistrationService : IHostedService, IDisposable
{
    /// <summary>How often an HTTP-checked registration verifies that the agent still has it.</summary>
    internal static readonly TimeSpan AntiEntropyInterval = TimeSpan.FromSeconds(30);

    private readonly ConsulClient _client;
    private readonly IServiceProvider _services;
    private readonly Randomizer _random;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _lock = new();
    private readonly List<CancellationTokenRegistration> _registrations = [];
    private Task _loop = Task.CompletedTask;
    private Task? _deregistration;
    private Registration? _current;
    private ConsulFailureKind? _failure;

    public ConsulRegistrationService(
        ConsulClient client,
        IServiceProvider services,
        Randomizer random,
        ILogger<ConsulRegistrationService> logger)
    {
        _client = client;
        _services = services;
        _random = random;
        _logger = logger;
    }

    /// <summary>Gets the registration sent to Consul, once known (tests).</summary>
    internal ConsulServiceRegistration? Current => _current?.Body;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!_client.Options.Registration.Enabled)
        {
            return Task.CompletedTask;
        }

        if (_services.GetService(typeof(IHostApplicationLifetime)) is IHostApplicationLifetime lifetime)
        {
            // The server's addresses are known only once the host has started.
            _registrations.Add(lifetime.ApplicationStarted.Register(static s => ((ConsulRegistrationService)s!).StartLoop(), this));
            _registrations.Add(lifetime.ApplicationStopping.Register(static s => ((ConsulRegistrationService)s!).BeginDeregistration(), this));
        }
        else
        {
            StartLoop();
        }

        return Task.CompletedTask;
    }

    private void StartLoop()
    {
        lock (_lock)
        {
            if (!_stopping.IsCancellationRequested)
            {
                _loop = Task.Run(() => RunAsync(_stopping.Token));
            }
        }
    }

    private async Task RunAsync(CancellationToken stopping)
    {
        var registration = Describe();
        if (registration is null)
        {
            return;
        }

        _current = registration;
        var registered = false;
        var failures = 0;
        while (!stopping.IsCancellationRequested)
        {
            TimeSpan delay;
            try
            {
                if (!registered)
                {
                    await _client.RegisterAsync(registration.Body, stopping).ConfigureAwait(false);
                    registered = true;
                    Log.Registered(_logger, registration.Id, registration.Body.Name!, registration.Target, registration.CheckDescription, _client.DisplayAddress);
                }

                if (registration.TtlCheckId is { } checkId)
                {
                    // Heartbeat at once after registering (the check starts critical), then every third of the TTL.
                    if (!await _client.PassTtlAsync(checkId, "MeshClient heartbeat", stopping).ConfigureAwait(false))
                    {
                        Log.AgentForgot(_logger, registration.Id, _client.DisplayAddress);
                        registered = false;
                        continue;
                    }

                    delay = _client.Options.Registration.Ttl / 3;
                }
                else
                {
                    delay = AntiEntropyInterval;
                }

                failures = 0;
                if (_failure is not null)
                {
                    _failure = null;
                    Log.RegistrationRecovered(_logger, registration.Id, _client.DisplayAddress);
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (ConsulException ex)
            {
                failures++;
                if (_failure != ex.Kind)
                {
                    _failure = ex.Kind;
                    Log.RegistrationFailing(_logger, registration.Id, ex.Kind, ex.Message);
                }

                var options = _client.Options;
                delay = ConsulBlockingRules.RetryDelay(failures, options.RetryBaseDelay, options.RetryMaxDelay, _random);
            }

            try
            {
                await Task.Delay(delay, _client.TimeProvider, stopping).ConfigureAwait(false);
                if (registered && registration.TtlCheckId is null
                    && !await _client.AgentServiceExistsAsync(registration.Id, stopping).ConfigureAwait(false))
                {
                    Log.AgentForgot(_logger, registration.Id, _client.DisplayAddress);
                    registered = false;
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (ConsulException)
            {
                // The agent did not answer the anti-entropy check; the next round tries again.
            }
        }
    }

    private void BeginDeregistration()
    {
        lock (_lock)
        {
            if (_deregistration is not null)
            {
                return;
            }

            _stopping.Cancel();
            _deregistration = DeregisterAsync();
        }
    }

    private async Task DeregisterAsync()
    {
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The loop only ends by cancellation; anything else is not a reason to stay registered.
        }

        if (_current is not { } registration)
        {
            return;
        }

        try
        {
            // Bounded by Mesh:Consul:RequestTimeout; the host's shutdown timeout bounds StopAsync as a whole.
            if (await _client.DeregisterAsync(registration.Id, CancellationToken.None).ConfigureAwait(false))
            {
                Log.Deregistered(_logger, registration.Id, _client.DisplayAddress);
            }
        }
        catch (ConsulException ex)
        {
            Log.DeregistrationFailed(_logger, registration.Id, ex.Message);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        BeginDeregistration();
        Task deregistration;
        lock (_lock)
        {
            deregistration = _deregistration!;
        }

        await deregistration.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private Registration? Describe()
    {
        var options = _client.Options;
        var settings = options.Registration;
        var name = settings.ServiceName;
        if (string.IsNullOrWhiteSpace(name))
        {
            name = (_services.GetService(typeof(IHostEnvironment)) as IHostEnvironment)?.ApplicationName;
        }

        if (string.IsNullOrWhiteSpace(name))
        {
            Log.NoServiceName(_logger);
            return null;
        }

        ParsedAddress? listening = null;
        foreach (var text in ServerAddresses.Read(_services))
        {
            if (ParsedAddress.TryParse(text, out var parsed)
                && (settings.Scheme is null || string.Equals(settings.Scheme, parsed.Scheme, StringComparison.OrdinalIgnoreCase)))
            {
                listening = parsed;
                break;
            }
        }

        var port = settings.Port ?? listening?.Port;
        if (port is null or <= 0)
        {
            Log.NoPort(_logger, name);
            return null;
        }

        var scheme = (settings.Scheme ?? listening?.Scheme ?? Uri.UriSchemeHttp).ToLowerInvariant();
        var address = settings.Address;
        if (string.IsNullOrEmpty(address) && listening?.SpecificHost is { } host)
        {
            address = host;
        }

        if (string.IsNullOrEmpty(address))
        {
            // Listening on a wildcard (or a host name): register the host's primary address, and probe that same
            // address. Left empty, Consul would send traffic to its node address while the HTTP check probed the
            // machine name, which can resolve elsewhere (another interface, or not at all).
            address = HostAddress.Primary()?.ToString();
        }

        var hostName = Dns.GetHostName();
        var id = settings.ServiceId;
        if (string.IsNullOrWhiteSpace(id))
        {
            id = string.Create(CultureInfo.InvariantCulture, $"{name}-{hostName}-{port}");
        }

        var meta = new Dictionary<string, string>(settings.Meta, StringComparer.Ordinal);
        if (scheme == Uri.UriSchemeHttps && !string.IsNullOrEmpty(options.SchemeMetaKey))
        {
            meta.TryAdd(options.SchemeMetaKey, Uri.UriSchemeHttps);
        }

        var check = new ConsulAgentCheck
        {
            CheckId = "service:" + id,
            Name = $"Service '{name}' check",
            DeregisterCriticalServiceAfter = settings.DeregisterCriticalServiceAfter is { } after ? FormatDuration(after) : null,
        };
        string checkDescription;
        string? ttlCheckId = null;
        if (!string.IsNullOrEmpty(settings.HealthCheckPath))
        {
            // A host with no address but loopback: Consul's node address can only be local too.
            var checkHost = string.IsNullOrEmpty(address) ? IPAddress.Loopback.ToString() : address;
            if (checkHost.Contains(':', StringComparison.Ordinal) && !checkHost.StartsWith('['))
            {
                checkHost = "[" + checkHost + "]";
            }

            var path = settings.HealthCheckPath.StartsWith('/') ? settings.HealthCheckPath : "/" + settings.HealthCheckPath;
            check.Http = string.Create(CultureInfo.InvariantCulture, $"{scheme}://{checkHost}:{port}{path}");
            check.Method = "GET";
            check.Interval = FormatDuration(settings.CheckInterval);
            check.Timeout = FormatDuration(settings.CheckTimeout);
            checkDescription = "HTTP check " + check.Http + " every " + check.Interval;
        }
        else
        {
            check.Ttl = FormatDuration(settings.Ttl);
            ttlCheckId = check.CheckId;
            checkDescription = "TTL check " + check.Ttl;
        }

        var body = new ConsulServiceRegistration
        {
            Id = id,
            Name = name,
            Tags = [.. settings.Tags],
            Address = string.IsNullOrEmpty(address) ? null : address,
            Port = port,
            Meta = meta.Count == 0 ? null : meta,
            Weights = new ConsulWeights { Passing = settings.Weight, Warning = settings.WarningWeight },
            Check = check,
        };
        var target = (address ?? "(agent address)") + ":" + port.Value.ToString(CultureInfo.InvariantCulture);
        return new Registration(id, body, ttlCheckId, target, checkDescription);
    }

    /// <summary>Formats a duration as a Go duration string in whole milliseconds (<c>1500ms</c>).</summary>
    internal static string FormatDuration(TimeSpan value) =>
        Math.Max(1L, (long)Math.Ceiling(value.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture) + "ms";

    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }

        _stopping.Cancel();
        _stopping.Dispose();
    }

    private sealed record Registration(string Id, ConsulServiceRegistration Body, string? TtlCheckId, string Target, string CheckDescription);

    /// <summary>A listening address such as <c>http://+:8080</c> or <c>https://127.0.0.1:5001</c>.</summary>
    private readonly record struct ParsedAddress(string Scheme, string? SpecificHost, int Port)
    {
        public static bool TryParse(string text, out ParsedAddress address)
        {
            address = default;
            var schemeEnd = text.IndexOf("://", StringComparison.Ordinal);
            if (schemeEnd <= 0)
            {
                return false;
            }

            var scheme = text[..schemeEnd];
            var rest = text[(schemeEnd + 3)..];
            var slash = rest.IndexOf('/', StringComparison.Ordinal);
            if (slash >= 0)
            {
                rest = rest[..slash];
            }

            var colon = rest.LastIndexOf(':');
            if (colon <= 0 || rest.EndsWith(']') || !int.TryParse(rest.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port))
            {
                return false;
            }

            var host = rest[..colon].Trim('[', ']');
            string? specific = host switch
            {
                "*" or "+" or "0.0.0.0" or "::" or "" => null,
                _ when string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase) => "127.0.0.1",
                _ when IPAddress.TryParse(host, out _) => host,
                _ => null,
            };
            address = new ParsedAddress(scheme.ToLowerInvariant(), specific, port);
            return true;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(310, LogLevel.Information, "Registered {ServiceId} ({Service} at {Target}, {Check}) with Consul at {Agent}.", EventName = "ConsulRegistered")]
        public static partial void Registered(ILogger logger, string serviceId, string service, string target, string check, string agent);

        [LoggerMessage(311, LogLevel.Warning, "Could not register or heartbeat {ServiceId} ({Kind}): {Reason} Retrying with backoff.", EventName = "ConsulRegistrationFailing")]
        public static partial void RegistrationFailing(ILogger logger, string serviceId, ConsulFailureKind kind, string reason);

        [LoggerMessage(312, LogLevel.Information, "Registration of {ServiceId} with Consul at {Agent} works again.", EventName = "ConsulRegistrationRecovered")]
        public static partial void RegistrationRecovered(ILogger logger, string serviceId, string agent);

        [LoggerMessage(313, LogLevel.Warning, "Consul at {Agent} no longer knows {ServiceId} (the agent restarted or lost it); registering it again.", EventName = "ConsulAgentForgotService")]
        public static partial void AgentForgot(ILogger logger, string serviceId, string agent);

        [LoggerMessage(314, LogLevel.Information, "Deregistered {ServiceId} from Consul at {Agent}.", EventName = "ConsulDeregistered")]
        public static partial void Deregistered(ILogger logger, string serviceId, string agent);

        [LoggerMessage(315, LogLevel.Warning, "Could not deregister {ServiceId}: {Reason} Consul removes it when its check turns critical (DeregisterCriticalServiceAfter).", EventName = "ConsulDeregistrationFailed")]
        public static partial void DeregistrationFailed(ILogger logger, string serviceId, string reason);

        [LoggerMessage(316, LogLevel.Error, "Consul registration is enabled, but the port of {Service} is unknown: set Mesh:Consul:Registration:Port. The service is not registered.", EventName = "ConsulRegistrationNoPort")]
        public static partial void NoPort(ILogger logger, string service);

        [LoggerMessage(317, LogLevel.Error, "Consul registration is enabled, but there is no service name: set Mesh:Consul:Registration:ServiceName. The service is not registered.", EventName = "ConsulRegistrationNoName")]
        public static partial void NoServiceName(ILogger logger);
    }
}
