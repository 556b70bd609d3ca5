using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace MeshClient.ConsulServer;

/// <summary>
/// The catalog and agent state of the test server: one raft-like index bumped by every write, per-service indexes
/// (max of the service's entries; the last deregistration index for a missing service), blocking waits woken by
/// any write, TTL expiry, HTTP checks run on their interval, and the critical-service reaper.
/// </summary>
internal sealed class ConsulState : IDisposable
{
    internal const string MaintenancePrefix = "_service_maintenance:";
    private const string DefaultMaintenanceNote = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";

    private readonly Lock _gate = new();
    private readonly ConsulServerOptions _options;
    private readonly Random _random;
    private readonly HttpClient _checkClient;
    private readonly CancellationTokenSource _disposed = new();
    private readonly Dictionary<string, NodeRecord> _nodes = new(StringComparer.Ordinal);
    private readonly SortedDictionary<(string Node, string Id), ServiceRecord> _services = [];
    private readonly SortedDictionary<(string Node, string Id), CheckRecord> _checks = [];
    private readonly Dictionary<string, ulong> _serviceNameIndexes = new(StringComparer.OrdinalIgnoreCase);
    private readonly ITimer _reaper;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ulong _index;
    private ulong _lastExtinction;

    public ConsulState(ConsulServerOptions options)
    {
        _options = options;
        _random = options.Seed is { } seed ? new Random(seed) : new Random();
        _checkClient = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromSeconds(30) }) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };

        // A dev agent's first raft writes: its node, serfHealth, and the "consul" service.
        _index = 10;
        var node = new NodeRecord(options.NodeName, options.NodeId, options.NodeAddress, options.Datacenter) { CreateIndex = 11, ModifyIndex = 11 };
        node.TaggedAddresses["lan"] = options.NodeAddress;
        node.TaggedAddresses["lan_ipv4"] = options.NodeAddress;
        node.TaggedAddresses["wan"] = options.NodeAddress;
        node.TaggedAddresses["wan_ipv4"] = options.NodeAddress;
        node.Meta["consul-network-segment"] = string.Empty;
        _nodes[node.Name] = node;
        _checks[(node.Name, "serfHealth")] = new CheckRecord(node.Name, "serfHealth", "Serf Health Status")
        {
            Status = "passing",
            Output = "Agent alive and reachable",
            CreateIndex = 12,
            ModifyIndex = 12,
        };
        _services[(node.Name, "consul")] = new ServiceRecord(node.Name, "consul", "consul")
        {
            Port = 8300,
            Meta = new(StringComparer.Ordinal) { ["raft_version"] = "3", ["serf_protocol_current"] = "2", ["version"] = "1.17.0" },
            Internal = true,
            CreateIndex = 13,
            ModifyIndex = 13,
        };
        _index = 13;
        _reaper = options.TimeProvider.CreateTimer(static s => ((ConsulState)s!).Reap(), this, options.ReapInterval, options.ReapInterval);
    }

    public string Datacenter => _options.Datacenter;

    public string AgentNode => _options.NodeName;

    public ulong Index
    {
        get
        {
            lock (_gate)
            {
                return Math.Max(_index, 1);
            }
        }
    }

    // ------------------------------------------------------------------ blocking

    /// <summary>Waits until <paramref name="index"/>() exceeds <paramref name="minIndex"/>, the timeout, or cancellation.</summary>
    public async Task WaitAsync(Func<ulong> index, ulong minIndex, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timeoutCts = new CancellationTokenSource(timeout, _options.TimeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeoutCts.Token, cancellationToken, _disposed.Token);
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (index() > minIndex)
                {
                    return;
                }

                changed = _changed.Task;
            }

            try
            {
                await changed.WaitAsync(linked.Token);
            }
            catch (OperationCanceledException) when (timeoutCts.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    public TimeSpan Jitter(TimeSpan wait)
    {
        lock (_gate)
        {
            return TimeSpan.FromTicks((long)(_random.NextDouble() * (wait.Ticks / 16)));
        }
    }

    /// <summary>Bumps the index and wakes every blocked query. Call under the lock.</summary>
    private ulong Bump()
    {
        _index++;
        var old = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        old.TrySetResult();
        return _index;
    }

    /// <summary>The index a blocking query on the service waits on (§2.2 maxIndexForService).</summary>
    public ulong ServiceIndex(string name)
    {
        lock (_gate)
        {
            ulong max = 0;
            var nodes = new HashSet<string>(StringComparer.Ordinal);
            foreach (var service in _services.Values)
            {
                if (string.Equals(service.Name, name, StringComparison.OrdinalIgnoreCase))
                {
                    max = Math.Max(max, service.ModifyIndex);
                    nodes.Add(service.Node);
                }
            }

            if (nodes.Count == 0)
            {
                return Math.Max(_lastExtinction, 1);
            }

            foreach (var check in _checks.Values)
            {
                if (nodes.Contains(check.Node) && (check.ServiceId.Length == 0 || string.Equals(check.ServiceName, name, StringComparison.OrdinalIgnoreCase)))
                {
                    max = Math.Max(max, check.ModifyIndex);
                }
            }

            foreach (var node in nodes)
            {
                max = Math.Max(max, _nodes[node].ModifyIndex);
            }

            // The "service.<name>" index entry moves on every write to the service, deletions of instances included.
            return Math.Max(Math.Max(max, _serviceNameIndexes.GetValueOrDefault(name)), 1);
        }
    }

    // ------------------------------------------------------------------ writes

    /// <summary>Registers (or replaces) a service on the agent node with its checks; returns an error text for a 400.</summary>
    public string? Register(ServiceDefinition definition, bool replaceExistingChecks, string? node = null)
    {
        node ??= _options.NodeName;
        var id = string.IsNullOrEmpty(definition.Id) ? definition.Name : definition.Id;
        var error = Validate(definition);
        if (error is not null)
        {
            return error;
        }

        var started = new List<CheckRecord>();
        lock (_gate)
        {
            if (!_nodes.ContainsKey(node))
            {
                return "Unknown node " + node;
            }

            var index = Bump();
            var key = (node, id);
            var created = _services.TryGetValue(key, out var existing) ? existing.CreateIndex : index;
            var service = new ServiceRecord(node, id, definition.Name)
            {
                Tags = [.. definition.Tags],
                Address = definition.Address ?? string.Empty,
                Port = definition.Port,
                Meta = definition.Meta is null ? null : new Dictionary<string, string>(definition.Meta, StringComparer.Ordinal),
                Passing = definition.WeightPassing ?? 1,
                Warning = definition.WeightWarning ?? 1,
                EnableTagOverride = definition.EnableTagOverride,
                Kind = definition.Kind,
                CreateIndex = created,
                ModifyIndex = index,
            };
            foreach (var (name, tagged) in definition.TaggedAddresses)
            {
                service.TaggedAddresses[name] = tagged;
            }

            if (IPAddress.TryParse(service.Address, out var ip) && ip.AddressFamily == AddressFamily.InterNetwork)
            {
                // Agents add these for an IPv4 service address (real captures show them).
                service.TaggedAddresses.TryAdd("lan_ipv4", (service.Address, service.Port));
                service.TaggedAddresses.TryAdd("wan_ipv4", (service.Address, service.Port));
            }

            _services[key] = service;
            _serviceNameIndexes[definition.Name] = index;
            if (existing is not null && !string.Equals(existing.Name, definition.Name, StringComparison.OrdinalIgnoreCase))
            {
                _serviceNameIndexes[existing.Name] = index;
            }

            var wanted = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < definition.Checks.Count; i++)
            {
                var def = definition.Checks[i];
                var checkId = !string.IsNullOrEmpty(def.CheckId)
                    ? def.CheckId
                    : definition.Checks.Count == 1 ? "service:" + id : "service:" + id + ":" + (i + 1).ToString(CultureInfo.InvariantCulture);
                wanted.Add(checkId);
                var checkKey = (node, checkId);
                _checks.TryGetValue(checkKey, out var previous);
                previous?.Stop();
                var check = new CheckRecord(node, checkId, string.IsNullOrEmpty(def.Name) ? $"Service '{definition.Name}' check" : def.Name)
                {
                    // [unverified] an existing check keeps its status when re-registered without an explicit one.
                    Status = def.Status ?? previous?.Status ?? "critical",
                    Notes = def.Notes,
                    Output = previous?.Output ?? string.Empty,
                    ServiceId = id,
                    ServiceName = definition.Name,
                    ServiceTags = [.. definition.Tags],
                    Type = def.Http is not null ? "http" : def.Ttl > TimeSpan.Zero ? "ttl" : def.OtherType ?? string.Empty,
                    Interval = def.Interval,
                    Timeout = def.Http is not null ? def.Timeout : TimeSpan.Zero,
                    Ttl = def.Ttl,
                    Http = def.Http,
                    Method = def.Method,
                    DeregisterAfter = def.DeregisterCriticalServiceAfter,
                    CreateIndex = previous?.CreateIndex ?? index,
                    ModifyIndex = index,
                };
                check.CriticalSince = check.Status == "critical" ? previous?.CriticalSince ?? _options.TimeProvider.GetUtcNow() : null;
                _checks[checkKey] = check;
                started.Add(check);
            }

            // Checks of this service that the request does not name: kept, unless ?replace-existing-checks.
            foreach (var (checkKey, check) in _checks.ToList())
            {
                if (checkKey.Node == node && check.ServiceId == id && !wanted.Contains(check.CheckId))
                {
                    if (replaceExistingChecks && !check.CheckId.StartsWith(MaintenancePrefix, StringComparison.Ordinal))
                    {
                        check.Stop();
                        _checks.Remove(checkKey);
                    }
                    else
                    {
                        check.ServiceTags = [.. definition.Tags];
                        check.ServiceName = definition.Name;
                    }
                }
            }
        }

        foreach (var check in started)
        {
            StartCheck(check);
        }

        return null;
    }

    private static string? Validate(ServiceDefinition definition)
    {
        if (string.IsNullOrEmpty(definition.Name))
        {
            return "Missing service name";
        }

        if (definition.Address is "0.0.0.0" or "::" or "[::]")
        {
            return "Invalid service address";
        }

        if (definition.WeightPassing is not null || definition.WeightWarning is not null)
        {
            var passing = definition.WeightPassing ?? 0;
            var warning = definition.WeightWarning ?? 0;
            if (passing < 1)
            {
                return "Invalid Weights: Passing must be greater than 0";
            }

            if (warning < 0)
            {
                return "Invalid Weights: Warning must be greater or equal than 0";
            }

            if (passing > 65535 || warning > 65535)
            {
                return "Invalid Weights: DNS Weight must be between 0 and 65535";
            }
        }

        if (definition.Meta is { } meta)
        {
            if (meta.Count > 64)
            {
                return "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs";
            }

            foreach (var (key, value) in meta)
            {
                string? problem = null;
                if (key.Length == 0)
                {
                    problem = "Key cannot be blank";
                }
                else if (!key.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
                {
                    problem = "Key contains invalid characters";
                }
                else if (key.Length > 128)
                {
                    problem = "Key is too long (limit: 128 characters)";
                }
                else if (key.StartsWith("consul-", StringComparison.Ordinal))
                {
                    problem = "Key prefix 'consul-' is reserved for internal use";
                }
                else if (value.Length > 512)
                {
                    problem = "Value is too long (limit: 512 characters)";
                }

                if (problem is not null)
                {
                    return $"Invalid Service Meta: Couldn't load metadata pair ('{key}', '{value}'): {problem}";
                }
            }
        }

        foreach (var check in definition.Checks)
        {
            if (check.Status is not null and not ("passing" or "warning" or "critical"))
            {
                return "Status for checks must 'passing', 'warning', 'critical'";
            }

            if ((check.Http is not null || check.OtherType is "script" or "tcp" or "grpc" or "udp" or "h2ping") && check.Interval <= TimeSpan.Zero)
            {
                // [unverified exact text] CheckType.Validate.
                return "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks";
            }

            if (check.Http is not null && check.Ttl > TimeSpan.Zero)
            {
                return "Invalid check: TTL must be > 0 for TTL checks";
            }
        }

        return null;
    }

    /// <summary>Deregisters a service of the agent node and its checks; false when unknown.</summary>
    public bool Deregister(string serviceId, string? node = null)
    {
        node ??= _options.NodeName;
        lock (_gate)
        {
            if (!_services.TryGetValue((node, serviceId), out var service) || service.Internal)
            {
                return false;
            }

            RemoveServiceLocked(node, serviceId);
            return true;
        }
    }

    private void RemoveServiceLocked(string node, string serviceId)
    {
        var name = _services[(node, serviceId)].Name;
        _services.Remove((node, serviceId));
        foreach (var (key, check) in _checks.ToList())
        {
            if (key.Node == node && check.ServiceId == serviceId)
            {
                check.Stop();
                _checks.Remove(key);
            }
        }

        _lastExtinction = Bump();
        _serviceNameIndexes[name] = _lastExtinction;
    }

    public string? ServiceNameOfCheck(string checkId, out bool exists)
    {
        lock (_gate)
        {
            exists = _checks.TryGetValue((_options.NodeName, checkId), out var check);
            return exists ? check!.ServiceName : null;
        }
    }

    public bool TryGetAgentService(string serviceId, out string name)
    {
        lock (_gate)
        {
            var found = _services.TryGetValue((_options.NodeName, serviceId), out var service) && !service.Internal;
            name = found ? service!.Name : string.Empty;
            return found;
        }
    }

    /// <summary>Sets a check's status as a TTL update does; resets its TTL clock.</summary>
    public CheckUpdateResult UpdateTtl(string checkId, string status, string? output)
    {
        lock (_gate)
        {
            if (!_checks.TryGetValue((_options.NodeName, checkId), out var check))
            {
                return CheckUpdateResult.NotFound;
            }

            if (check.Ttl <= TimeSpan.Zero)
            {
                return CheckUpdateResult.NotTtl;
            }

            SetStatusLocked(check, status, output ?? string.Empty);
            check.TtlTimer?.Change(check.Ttl, System.Threading.Timeout.InfiniteTimeSpan);
            return CheckUpdateResult.Updated;
        }
    }

    /// <summary>Sets any check's status directly (test hook, no TTL semantics).</summary>
    public bool SetCheckStatus(string checkId, string status, string output = "")
    {
        lock (_gate)
        {
            if (!_checks.TryGetValue((_options.NodeName, checkId), out var check))
            {
                return false;
            }

            SetStatusLocked(check, status, output);
            return true;
        }
    }

    private void SetStatusLocked(CheckRecord check, string status, string output)
    {
        if (output.Length > 4096)
        {
            output = output[..4096];
        }

        if (check.Status == status && check.Output == output)
        {
            return;
        }

        if (status == "critical" && check.Status != "critical")
        {
            check.CriticalSince = _options.TimeProvider.GetUtcNow();
        }
        else if (status != "critical")
        {
            check.CriticalSince = null;
        }

        check.Status = status;
        check.Output = output;
        check.ModifyIndex = Bump();
        if (check.ServiceName.Length > 0)
        {
            _serviceNameIndexes[check.ServiceName] = check.ModifyIndex;
        }
    }

    public bool SetMaintenance(string serviceId, bool enable, string? reason)
    {
        lock (_gate)
        {
            if (!_services.TryGetValue((_options.NodeName, serviceId), out var service) || service.Internal)
            {
                return false;
            }

            var key = (_options.NodeName, MaintenancePrefix + serviceId);
            if (enable)
            {
                if (!_checks.ContainsKey(key))
                {
                    var index = Bump();
                    _checks[key] = new CheckRecord(_options.NodeName, key.Item2, "Service Maintenance Mode")
                    {
                        Status = "critical",
                        Notes = string.IsNullOrEmpty(reason) ? DefaultMaintenanceNote : reason,
                        ServiceId = serviceId,
                        ServiceName = service.Name,
                        ServiceTags = [.. service.Tags],
                        Type = "maintenance",
                        CriticalSince = _options.TimeProvider.GetUtcNow(),
                        CreateIndex = index,
                        ModifyIndex = index,
                    };
                    _serviceNameIndexes[service.Name] = index;
                }
            }
            else if (_checks.Remove(key))
            {
                _serviceNameIndexes[service.Name] = Bump();
            }

            return true;
        }
    }

    /// <summary>The agent forgets every service it registered (an agent restarted without its data dir).</summary>
    public void ForgetAgentServices()
    {
        lock (_gate)
        {
            foreach (var (key, service) in _services.ToList())
            {
                if (key.Node == _options.NodeName && !service.Internal)
                {
                    RemoveServiceLocked(key.Node, key.Id);
                }
            }
        }
    }

    /// <summary>
    /// Makes every index go back to at most <paramref name="index"/> (a snapshot restore) and wakes every blocked
    /// query, as Consul does when the state store is abandoned.
    /// </summary>
    public void ResetIndex(ulong index)
    {
        lock (_gate)
        {
            _index = index;
            _lastExtinction = Math.Min(_lastExtinction, index);
            foreach (var name in _serviceNameIndexes.Keys.ToList())
            {
                _serviceNameIndexes[name] = Math.Min(_serviceNameIndexes[name], index);
            }
            foreach (var node in _nodes.Values)
            {
                node.CreateIndex = Math.Min(node.CreateIndex, index);
                node.ModifyIndex = Math.Min(node.ModifyIndex, index);
            }

            foreach (var service in _services.Values)
            {
                service.CreateIndex = Math.Min(service.CreateIndex, index);
                service.ModifyIndex = Math.Min(service.ModifyIndex, index);
            }

            foreach (var check in _checks.Values)
            {
                check.CreateIndex = Math.Min(check.CreateIndex, index);
                check.ModifyIndex = Math.Min(check.ModifyIndex, index);
            }

            var old = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            old.TrySetResult();
        }
    }

    /// <summary>An idempotent write: bumps the index of the service without changing its data.</summary>
    public void Touch(string serviceId)
    {
        lock (_gate)
        {
            if (_services.TryGetValue((_options.NodeName, serviceId), out var service))
            {
                service.ModifyIndex = Bump();
                _serviceNameIndexes[service.Name] = service.ModifyIndex;
            }
        }
    }

    public void AddNode(string name, string address, Dictionary<string, string>? meta = null)
    {
        lock (_gate)
        {
            var index = Bump();
            var node = new NodeRecord(name, Guid.NewGuid().ToString(), address, _options.Datacenter) { CreateIndex = index, ModifyIndex = index };
            node.TaggedAddresses["lan"] = address;
            node.TaggedAddresses["wan"] = address;
            node.Meta["consul-network-segment"] = string.Empty;
            foreach (var (k, v) in meta ?? [])
            {
                node.Meta[k] = v;
            }

            _nodes[name] = node;
            _checks[(name, "serfHealth")] = new CheckRecord(name, "serfHealth", "Serf Health Status")
            {
                Status = "passing",
                Output = "Agent alive and reachable",
                CreateIndex = index,
                ModifyIndex = index,
            };
        }
    }

    // ------------------------------------------------------------------ checks

    private void StartCheck(CheckRecord check)
    {
        if (check.Ttl > TimeSpan.Zero)
        {
            check.TtlTimer = _options.TimeProvider.CreateTimer(static s =>
            {
                var (state, c) = ((ConsulState, CheckRecord))s!;
                state.ExpireTtl(c);
            }, (this, check), check.Ttl, System.Threading.Timeout.InfiniteTimeSpan);
        }
        else if (check.Http is not null && check.Interval > TimeSpan.Zero)
        {
            var cts = CancellationTokenSource.CreateLinkedTokenSource(_disposed.Token);
            check.Runner = cts;
            _ = Task.Run(() => RunHttpCheckAsync(check, cts.Token));
        }
    }

    private void ExpireTtl(CheckRecord check)
    {
        lock (_gate)
        {
            if (_checks.TryGetValue((check.Node, check.CheckId), out var current) && current == check)
            {
                SetStatusLocked(check, "critical", "TTL expired");
            }
        }
    }

    private async Task RunHttpCheckAsync(CheckRecord check, CancellationToken cancellationToken)
    {
        var time = _options.TimeProvider;
        try
        {
            if (_options.HttpCheckInitialStagger)
            {
                TimeSpan stagger;
                lock (_gate)
                {
                    stagger = TimeSpan.FromTicks((long)(_random.NextDouble() * check.Interval.Ticks));
                }

                await Task.Delay(stagger, time, cancellationToken);
            }

            while (!cancellationToken.IsCancellationRequested)
            {
                var (status, output) = await ProbeAsync(check, cancellationToken);
                lock (_gate)
                {
                    if (_checks.TryGetValue((check.Node, check.CheckId), out var current) && current == check)
                    {
                        // Output-only changes are synced lazily by Consul (check_update_interval): only a status change writes.
                        if (check.Status != status)
                        {
                            SetStatusLocked(check, status, output);
                        }
                        else
                        {
                            check.Output = output;
                        }
                    }
                }

                await Task.Delay(check.Interval, time, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task<(string Status, string Output)> ProbeAsync(CheckRecord check, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(check.Timeout > TimeSpan.Zero ? check.Timeout : TimeSpan.FromSeconds(10));
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        try
        {
            using var request = new HttpRequestMessage(new HttpMethod(check.Method), check.Http);
            request.Headers.UserAgent.ParseAdd("Consul Health Check");
            using var response = await _checkClient.SendAsync(request, linked.Token);
            var body = await response.Content.ReadAsStringAsync(linked.Token);
            var code = (int)response.StatusCode;
            var status = code is >= 200 and < 300 ? "passing" : code == 429 ? "warning" : "critical";
            return (status, $"HTTP {check.Method} {check.Http}: {code} {response.ReasonPhrase} Output: {body}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return ("critical", $"Get \"{check.Http}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)");
        }
        catch (HttpRequestException ex)
        {
            return ("critical", $"Get \"{check.Http}\": {ex.Message}");
        }
    }

    private void Reap()
    {
        lock (_gate)
        {
            var now = _options.TimeProvider.GetUtcNow();
            foreach (var check in _checks.Values.ToList())
            {
                if (check.DeregisterAfter is { } after && check.Status == "critical" && check.CriticalSince is { } since
                    && now - since >= (after < _options.MinimumDeregisterCriticalServiceAfter ? _options.MinimumDeregisterCriticalServiceAfter : after)
                    && _services.ContainsKey((check.Node, check.ServiceId)))
                {
                    RemoveServiceLocked(check.Node, check.ServiceId);
                }
            }
        }
    }

    // ------------------------------------------------------------------ reads (JSON in Go struct order)

    /// <summary>Writes the health entries of a service (§1.3); returns the unfiltered index.</summary>
    public (byte[] Json, ulong Index, bool Filtered) ReadHealth(string name, IReadOnlyList<string> tags, bool passingOnly, IReadOnlyList<(string Key, string Value)> nodeMeta, Func<HealthView, bool>? filter, bool canRead, bool pretty)
    {
        lock (_gate)
        {
            var index = ServiceIndex(name);
            var entries = new List<HealthView>();
            foreach (var service in _services.Values)
            {
                if (!string.Equals(service.Name, name, StringComparison.OrdinalIgnoreCase) || !HasTags(service, tags))
                {
                    continue;
                }

                var node = _nodes[service.Node];
                if (!nodeMeta.All(m => node.Meta.TryGetValue(m.Key, out var v) && v == m.Value))
                {
                    continue;
                }

                var checks = _checks.Values.Where(c => c.Node == service.Node && (c.ServiceId.Length == 0 || c.ServiceId == service.Id)).ToList();
                var view = new HealthView(node, service, checks);
                if (filter is null || filter(view))
                {
                    entries.Add(view);
                }
            }

            var filtered = !canRead && entries.Count > 0;
            if (!canRead)
            {
                entries.Clear();
            }

            if (passingOnly)
            {
                // agent/health_endpoint.go filterNonPassing: swap the dropped entry with the last one.
                var n = entries.Count;
                for (var i = 0; i < n; i++)
                {
                    if (entries[i].Checks.Any(c => c.Status != "passing"))
                    {
                        entries[i] = entries[n - 1];
                        n--;
                        i--;
                    }
                }

                entries.RemoveRange(n, entries.Count - n);
            }

            return (Write(pretty, w =>
            {
                w.WriteStartArray();
                foreach (var entry in entries)
                {
                    w.WriteStartObject();
                    w.WritePropertyName("Node");
                    WriteNode(w, entry.Node);
                    w.WritePropertyName("Service");
                    WriteService(w, entry.Service);
                    w.WritePropertyName("Checks");
                    w.WriteStartArray();
                    foreach (var check in entry.Checks)
                    {
                        WriteCheck(w, check);
                    }

                    w.WriteEndArray();
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }), index, filtered);
        }
    }

    public (byte[] Json, ulong Index, bool Filtered) ReadCatalogService(string name, IReadOnlyList<string> tags, bool canRead, bool pretty)
    {
        lock (_gate)
        {
            var index = ServiceIndex(name);
            var services = _services.Values.Where(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase) && HasTags(s, tags)).ToList();
            var filtered = !canRead && services.Count > 0;
            if (!canRead)
            {
                services.Clear();
            }

            return (Write(pretty, w =>
            {
                w.WriteStartArray();
                foreach (var service in services)
                {
                    var node = _nodes[service.Node];
                    w.WriteStartObject();
                    w.WriteString("ID", node.Id);
                    w.WriteString("Node", node.Name);
                    w.WriteString("Address", node.Address);
                    w.WriteString("Datacenter", node.Datacenter);
                    WriteStringMap(w, "TaggedAddresses", node.TaggedAddresses);
                    WriteStringMap(w, "NodeMeta", node.Meta);
                    w.WriteString("ServiceKind", service.Kind);
                    w.WriteString("ServiceID", service.Id);
                    w.WriteString("ServiceName", service.Name);
                    WriteStrings(w, "ServiceTags", service.Tags);
                    w.WriteString("ServiceAddress", service.Address);
                    if (service.TaggedAddresses.Count > 0)
                    {
                        WriteTaggedAddresses(w, "ServiceTaggedAddresses", service.TaggedAddresses);
                    }

                    WriteWeights(w, "ServiceWeights", service);

                    // The catalog normalises a missing Meta to {} (unlike health's "Meta": null).
                    WriteStringMap(w, "ServiceMeta", service.Meta ?? []);
                    w.WriteNumber("ServicePort", service.Port);
                    w.WriteBoolean("ServiceEnableTagOverride", service.EnableTagOverride);
                    w.WriteStartObject("ServiceProxy");
                    w.WriteStartObject("MeshGateway");
                    w.WriteEndObject();
                    w.WriteStartObject("Expose");
                    w.WriteEndObject();
                    w.WriteEndObject();
                    w.WriteStartObject("ServiceConnect");
                    w.WriteEndObject();
                    w.WriteNumber("CreateIndex", service.CreateIndex);
                    w.WriteNumber("ModifyIndex", service.ModifyIndex);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }), index, filtered);
        }
    }

    public (byte[] Json, ulong Index, bool Filtered) ReadCatalogServices(bool canRead, bool pretty)
    {
        lock (_gate)
        {
            var map = new SortedDictionary<string, SortedSet<string>>(StringComparer.Ordinal);
            foreach (var service in _services.Values)
            {
                if (!map.TryGetValue(service.Name, out var tags))
                {
                    map[service.Name] = tags = new SortedSet<string>(StringComparer.Ordinal);
                }

                tags.UnionWith(service.Tags);
            }

            var filtered = !canRead && map.Count > 0;
            if (!canRead)
            {
                map.Clear();
            }

            return (Write(pretty, w =>
            {
                w.WriteStartObject();
                foreach (var (name, tags) in map)
                {
                    WriteStrings(w, name, tags);
                }

                w.WriteEndObject();
            }), Math.Max(_index, 1), filtered);
        }
    }

    public byte[] ReadAgentServices(bool canRead, bool pretty)
    {
        lock (_gate)
        {
            return Write(pretty, w =>
            {
                w.WriteStartObject();
                foreach (var service in _services.Values)
                {
                    if (canRead && service.Node == _options.NodeName && !service.Internal)
                    {
                        w.WritePropertyName(service.Id);
                        WriteAgentService(w, service, _options.Datacenter);
                    }
                }

                w.WriteEndObject();
            });
        }
    }

    public byte[]? ReadAgentService(string serviceId, bool pretty)
    {
        lock (_gate)
        {
            return _services.TryGetValue((_options.NodeName, serviceId), out var service) && !service.Internal
                ? Write(pretty, w => WriteAgentService(w, service, _options.Datacenter))
                : null;
        }
    }

    public byte[] ReadAgentChecks(bool canRead, bool pretty)
    {
        lock (_gate)
        {
            return Write(pretty, w =>
            {
                w.WriteStartObject();
                foreach (var check in _checks.Values)
                {
                    if (canRead && check.Node == _options.NodeName)
                    {
                        w.WritePropertyName(check.CheckId);
                        WriteCheck(w, check);
                    }
                }

                w.WriteEndObject();
            });
        }
    }

    private static bool HasTags(ServiceRecord service, IReadOnlyList<string> tags) =>
        tags.All(t => service.Tags.Any(s => string.Equals(s, t, StringComparison.OrdinalIgnoreCase)));

    private static byte[] Write(bool pretty, Action<Utf8JsonWriter> write)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = pretty, IndentSize = 4 }))
        {
            write(writer);
        }

        if (pretty)
        {
            stream.WriteByte((byte)'\n');
        }

        return stream.ToArray();
    }

    private static void WriteNode(Utf8JsonWriter w, NodeRecord node)
    {
        w.WriteStartObject();
        w.WriteString("ID", node.Id);
        w.WriteString("Node", node.Name);
        w.WriteString("Address", node.Address);
        w.WriteString("Datacenter", node.Datacenter);
        WriteStringMap(w, "TaggedAddresses", node.TaggedAddresses);
        WriteStringMap(w, "Meta", node.Meta);
        w.WriteNumber("CreateIndex", node.CreateIndex);
        w.WriteNumber("ModifyIndex", node.ModifyIndex);
        w.WriteEndObject();
    }

    private static void WriteService(Utf8JsonWriter w, ServiceRecord service)
    {
        w.WriteStartObject();
        if (service.Kind.Length > 0)
        {
            w.WriteString("Kind", service.Kind);
        }

        w.WriteString("ID", service.Id);
        w.WriteString("Service", service.Name);
        WriteStrings(w, "Tags", service.Tags);
        w.WriteString("Address", service.Address);
        if (service.TaggedAddresses.Count > 0)
        {
            WriteTaggedAddresses(w, "TaggedAddresses", service.TaggedAddresses);
        }

        if (service.Meta is null)
        {
            w.WriteNull("Meta");
        }
        else
        {
            WriteStringMap(w, "Meta", service.Meta);
        }

        if (service.Port != 0)
        {
            w.WriteNumber("Port", service.Port);
        }

        WriteWeights(w, "Weights", service);
        w.WriteBoolean("EnableTagOverride", service.EnableTagOverride);
        w.WriteStartObject("Proxy");
        w.WriteString("Mode", string.Empty);
        w.WriteStartObject("MeshGateway");
        w.WriteEndObject();
        w.WriteStartObject("Expose");
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteStartObject("Connect");
        w.WriteEndObject();
        w.WriteString("PeerName", string.Empty);
        w.WriteNumber("CreateIndex", service.CreateIndex);
        w.WriteNumber("ModifyIndex", service.ModifyIndex);
        w.WriteEndObject();
    }

    private static void WriteAgentService(Utf8JsonWriter w, ServiceRecord service, string datacenter)
    {
        w.WriteStartObject();
        if (service.Kind.Length > 0)
        {
            w.WriteString("Kind", service.Kind);
        }

        w.WriteString("ID", service.Id);
        w.WriteString("Service", service.Name);
        WriteStrings(w, "Tags", service.Tags);
        WriteStringMap(w, "Meta", service.Meta ?? []);
        w.WriteNumber("Port", service.Port);
        w.WriteString("Address", service.Address);
        if (service.TaggedAddresses.Count > 0)
        {
            WriteTaggedAddresses(w, "TaggedAddresses", service.TaggedAddresses);
        }

        WriteWeights(w, "Weights", service);
        w.WriteBoolean("EnableTagOverride", service.EnableTagOverride);
        w.WriteString("Datacenter", datacenter);
        w.WriteEndObject();
    }

    private static void WriteCheck(Utf8JsonWriter w, CheckRecord check)
    {
        w.WriteStartObject();
        w.WriteString("Node", check.Node);
        w.WriteString("CheckID", check.CheckId);
        w.WriteString("Name", check.Name);
        w.WriteString("Status", check.Status);
        w.WriteString("Notes", check.Notes);
        w.WriteString("Output", check.Output);
        w.WriteString("ServiceID", check.ServiceId);
        w.WriteString("ServiceName", check.ServiceName);
        WriteStrings(w, "ServiceTags", check.ServiceTags);
        w.WriteString("Type", check.Type);
        w.WriteString("Interval", check.Interval > TimeSpan.Zero ? GoDuration.Format(check.Interval) : string.Empty);
        w.WriteString("Timeout", check.Timeout > TimeSpan.Zero ? GoDuration.Format(check.Timeout) : string.Empty);
        w.WriteNumber("ExposedPort", 0);
        w.WriteStartObject("Definition");
        w.WriteEndObject();
        w.WriteNumber("CreateIndex", check.CreateIndex);
        w.WriteNumber("ModifyIndex", check.ModifyIndex);
        w.WriteEndObject();
    }

    private static void WriteWeights(Utf8JsonWriter w, string name, ServiceRecord service)
    {
        w.WriteStartObject(name);
        w.WriteNumber("Passing", service.Passing);
        w.WriteNumber("Warning", service.Warning);
        w.WriteEndObject();
    }

    private static void WriteStrings(Utf8JsonWriter w, string name, IEnumerable<string> values)
    {
        w.WriteStartArray(name);
        foreach (var value in values)
        {
            w.WriteStringValue(value);
        }

        w.WriteEndArray();
    }

    /// <summary>Go sorts map keys.</summary>
    private static void WriteStringMap(Utf8JsonWriter w, string name, IDictionary<string, string> map)
    {
        w.WriteStartObject(name);
        foreach (var (key, value) in map.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            w.WriteString(key, value);
        }

        w.WriteEndObject();
    }

    private static void WriteTaggedAddresses(Utf8JsonWriter w, string name, IDictionary<string, (string Address, int Port)> map)
    {
        w.WriteStartObject(name);
        foreach (var (key, value) in map.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            w.WriteStartObject(key);
            w.WriteString("Address", value.Address);
            w.WriteNumber("Port", value.Port);
            w.WriteEndObject();
        }

        w.WriteEndObject();
    }

    public void Dispose()
    {
        _disposed.Cancel();
        _reaper.Dispose();
        lock (_gate)
        {
            foreach (var check in _checks.Values)
            {
                check.Stop();
            }
        }

        _checkClient.Dispose();
    }

    internal sealed class NodeRecord(string name, string id, string address, string datacenter)
    {
        public string Name { get; } = name;

        public string Id { get; } = id;

        public string Address { get; } = address;

        public string Datacenter { get; } = datacenter;

        public Dictionary<string, string> TaggedAddresses { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, string> Meta { get; } = new(StringComparer.Ordinal);

        public ulong CreateIndex { get; set; }

        public ulong ModifyIndex { get; set; }
    }

    internal sealed class ServiceRecord(string node, string id, string name)
    {
        public string Node { get; } = node;

        public string Id { get; } = id;

        public string Name { get; } = name;

        public List<string> Tags { get; init; } = [];

        public string Address { get; init; } = string.Empty;

        public Dictionary<string, (string Address, int Port)> TaggedAddresses { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, string>? Meta { get; init; }

        public int Port { get; init; }

        public int Passing { get; init; } = 1;

        public int Warning { get; init; } = 1;

        public bool EnableTagOverride { get; init; }

        public string Kind { get; init; } = string.Empty;

        public bool Internal { get; init; }

        public ulong CreateIndex { get; set; }

        public ulong ModifyIndex { get; set; }
    }

    internal sealed class CheckRecord(string node, string checkId, string name)
    {
        public string Node { get; } = node;

        public string CheckId { get; } = checkId;

        public string Name { get; } = name;

        public string Status { get; set; } = "critical";

        public string Notes { get; init; } = string.Empty;

        public string Output { get; set; } = string.Empty;

        public string ServiceId { get; init; } = string.Empty;

        public string ServiceName { get; set; } = string.Empty;

        public List<string> ServiceTags { get; set; } = [];

        public string Type { get; init; } = string.Empty;

        public TimeSpan Interval { get; init; }

        public TimeSpan Timeout { get; init; }

        public TimeSpan Ttl { get; init; }

        public string? Http { get; init; }

        public string Method { get; init; } = "GET";

        public TimeSpan? DeregisterAfter { get; init; }

        public DateTimeOffset? CriticalSince { get; set; }

        public ITimer? TtlTimer { get; set; }

        public CancellationTokenSource? Runner { get; set; }

        public ulong CreateIndex { get; set; }

        public ulong ModifyIndex { get; set; }

        public void Stop()
        {
            TtlTimer?.Dispose();
            Runner?.Cancel();
        }
    }
}

/// <summary>One entry of a health read, for <c>?filter=</c>.</summary>
internal sealed record HealthView(ConsulState.NodeRecord Node, ConsulState.ServiceRecord Service, List<ConsulState.CheckRecord> Checks);

internal enum CheckUpdateResult
{
    Updated,
    NotFound,
    NotTtl,
}
