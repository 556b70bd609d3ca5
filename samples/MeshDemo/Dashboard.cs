using System.Globalization;
using System.Text;
using MeshClient.Balancing;
using MeshClient.Status;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace MeshDemo;

/// <summary>
/// Renders what the mesh is doing: a live table in a terminal, plain periodic lines elsewhere (CI, pipes), and a
/// summary at the end. Endpoint state, weight, in-flight and attempt counts come from <see cref="IMeshStatus"/>;
/// latency percentiles and errors from the demo's own per-attempt timing.
/// </summary>
internal sealed class Dashboard(DemoOptions options, IReadOnlyList<Backend> backends, DemoStats stats, MeshEvents events, IMeshStatus status, string serviceName)
{
    /// <summary>The live table's latency and share columns look at this much recent history.</summary>
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(5);

    private readonly Dictionary<int, string> _states = [];
    private readonly List<string> _events = [];
    private readonly bool _zones = backends.Any(b => b.Spec.Zone is not null);

    // Each backend's weight is a share of its own service's (with --canary, catalog-v2's two instances are a service).
    private readonly Dictionary<string, int> _serviceWeights = backends.GroupBy(b => b.Spec.Service ?? serviceName).ToDictionary(g => g.Key, g => g.Sum(b => b.Spec.Weight));

    public string Policy { get; private set; } = "?";

    /// <summary>Gets the provider that found the service, as <see cref="IMeshStatus"/> names it (Kubernetes, Consul, …).</summary>
    public string Source => Service()?.DiscoverySource ?? "?";

    /// <summary>
    /// Reads the mesh's status (the state column) and returns the ejections, probes and readmissions the mesh logged
    /// since the previous call: every one, where sampling the state a few times a second would miss a short probe.
    /// </summary>
    public List<string> Sample(TimeSpan elapsed)
    {
        var changes = new List<string>();
        while (events.Pending.TryDequeue(out var meshEvent))
        {
            var change = Describe(meshEvent);
            changes.Add(change);
            _events.Add(change);
        }

        var services = status.GetServices();
        if (Service(services) is not { } service)
        {
            return changes;
        }

        Policy = service.LoadBalancer;
        foreach (var backend in backends)
        {
            _states[backend.Port] = StateOf(services, backend)?.State ?? "unknown";
        }

        return changes;
    }

    private string Describe(MeshEvent meshEvent) =>
        $"{Seconds(meshEvent.At),6} {NameOf(meshEvent.Endpoint)} {meshEvent.Kind}" + (meshEvent.Reason is { } reason ? $" ({reason})" : string.Empty);

    // An event names the endpoint by its id: its address (configuration) or an instance id such as a pod, catalog-alpha.
    private string NameOf(string endpoint) =>
        backends.FirstOrDefault(b =>
            endpoint.TrimEnd('/').EndsWith(":" + b.Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            || string.Equals(endpoint, $"{serviceName}-{b.Name}", StringComparison.Ordinal))?.Name ?? endpoint;

    /// <summary>The live view: header, endpoint table, the route split (with --canary), recent state changes.</summary>
    public IRenderable Render(TimeSpan elapsed)
    {
        var services = status.GetServices();
        var service = Service(services);
        var since = elapsed - Window;
        var windows = backends.ToDictionary(b => b.Port, b => stats.ForPort(b.Port)!.Window(since));
        var recent = Math.Max(1, windows.Values.Sum(w => w.Count));

        var table = new Table().Border(TableBorder.Rounded).Expand();
        table.Title = new TableTitle($"[bold]MeshClient demo[/]: service [aqua]{serviceName}[/] (discovery: [aqua]{Markup.Escape(Source)}[/]), policy [aqua]{Markup.Escape(Policy)}[/]");
        table.AddColumn(new TableColumn("Endpoint").NoWrap());
        if (_zones)
        {
            table.AddColumn(new TableColumn("Zone").NoWrap());
        }

        table.AddColumn(new TableColumn("Weight").RightAligned());
        table.AddColumn(new TableColumn("Share (5 s)").RightAligned());
        table.AddColumn(new TableColumn("p50").RightAligned());
        table.AddColumn(new TableColumn("p99").RightAligned());
        table.AddColumn(new TableColumn("In flight").RightAligned());
        table.AddColumn(new TableColumn("Attempts").RightAligned());
        table.AddColumn(new TableColumn("Errors").RightAligned());
        table.AddColumn("State");
        foreach (var backend in backends)
        {
            var endpoint = StateOf(services, backend);
            var window = windows[backend.Port];
            var cells = new List<string> { $"[bold]{backend.Name}[/] [grey]{Markup.Escape(backend.Spec.Role)}[/]" };
            if (_zones)
            {
                cells.Add($"{Markup.Escape(backend.Spec.Zone ?? "-")} " + (endpoint?.Locality == "local" ? "[green]local[/]" : "[grey]remote[/]"));
            }

            cells.AddRange(
            [
                $"{backend.Spec.Weight} [grey]({WeightShare(backend)})[/]",
                Percent(window.Count, recent),
                Millis(window.P50),
                Millis(window.P99),
                (endpoint?.InFlight ?? 0).ToString(CultureInfo.InvariantCulture),
                (endpoint?.Attempts ?? 0).ToString("N0", CultureInfo.InvariantCulture),
                stats.ForPort(backend.Port)!.Errors.ToString("N0", CultureInfo.InvariantCulture),
                StateMarkup(endpoint?.State, ServiceOf(services, backend)?.Panic == true),
            ]);
            table.AddRow([.. cells]);
        }

        table.Caption = new TableTitle(
            $"{Seconds(elapsed)} / {Seconds(options.Duration)}   requests [bold]{stats.Requests:N0}[/]   ok [green]{stats.Succeeded:N0}[/]   " +
            $"failed [red]{stats.Failed:N0}[/]   retries [yellow]{stats.Retries:N0}[/]   ejections [red]{stats.Ejections:N0}[/]" +
            (_zones ? Environment.NewLine + Markup.Escape(ZoneLine(service, windows)) : string.Empty));

        var events = _events.Count == 0
            ? new Markup("[grey]No ejections, probes or readmissions yet.[/]")
            : new Markup("[grey]" + Markup.Escape(string.Join(Environment.NewLine, _events.TakeLast(4))) + "[/]");
        return service is { Routes.Count: > 0 } ? new Rows(table, RouteTable(service, windows), events) : new Rows(table, events);
    }

    /// <summary>
    /// The route split of the service: each backend's weight, the share the mesh gives it now (IMeshStatus: the weights
    /// after the backends with no healthy endpoint gave theirs away), and the share of attempts it took in the window.
    /// </summary>
    private Table RouteTable(MeshServiceStatus service, Dictionary<int, (int Count, double? P50, double? P99)> windows)
    {
        var table = new Table().Border(TableBorder.Rounded).Expand();
        table.Title = new TableTitle($"Routes of [aqua]{serviceName}[/] (first match wins)");
        table.AddColumn("Route");
        table.AddColumn("Backend");
        table.AddColumn(new TableColumn("Weight").RightAligned());
        table.AddColumn(new TableColumn("Share now").RightAligned());
        table.AddColumn(new TableColumn("Attempts (5 s)").RightAligned());
        table.AddColumn("State");
        var attempts = Math.Max(1, windows.Values.Sum(w => w.Count));
        foreach (var route in service.Routes)
        {
            foreach (var backend in route.Backends)
            {
                var taken = backends.Where(b => (b.Spec.Service ?? serviceName) == backend.Service).Sum(b => windows[b.Port].Count);
                table.AddRow(
                    Markup.Escape(route.Name),
                    $"[aqua]{Markup.Escape(backend.Service)}[/]",
                    backend.Weight.ToString(CultureInfo.InvariantCulture),
                    backend.Share.ToString("0.#", CultureInfo.InvariantCulture) + "%",
                    Percent(taken, attempts),
                    backend.State == "healthy" ? "[green]healthy[/]" : $"[red]{Markup.Escape(backend.State)}[/]");
            }
        }

        return table;
    }

    /// <summary>One plain line for logs: totals and, per endpoint, share, latency and state.</summary>
    public string Line(TimeSpan elapsed)
    {
        var since = elapsed - Window;
        var windows = backends.ToDictionary(b => b.Port, b => stats.ForPort(b.Port)!.Window(since));
        var recent = Math.Max(1, windows.Values.Sum(w => w.Count));
        var line = new StringBuilder();
        line.Append(CultureInfo.InvariantCulture, $"[{Seconds(elapsed),6}] requests {stats.Requests} ok {stats.Succeeded} failed {stats.Failed} retries {stats.Retries} ejections {stats.Ejections}");
        foreach (var backend in backends)
        {
            var window = windows[backend.Port];
            var state = _states.GetValueOrDefault(backend.Port, "unknown"); // as last sampled, like the state changes printed
            line.Append(CultureInfo.InvariantCulture, $" | {backend.Name} {Percent(window.Count, recent)} p50 {Millis(window.P50)} p99 {Millis(window.P99)} {state}");
        }

        var service = Service(status.GetServices());
        if (_zones)
        {
            line.Append(" | ").Append(ZoneLine(service, windows));
        }

        if (service is { Routes.Count: > 0 })
        {
            // The split: per backend service, its share of the window's attempts, and the share the mesh gives it now.
            foreach (var backend in service.Routes.SelectMany(r => r.Backends))
            {
                var taken = backends.Where(b => (b.Spec.Service ?? serviceName) == backend.Service).Sum(b => windows[b.Port].Count);
                line.Append(CultureInfo.InvariantCulture, $" | route {backend.Service} {Percent(taken, recent)} (share {backend.Share:0.#}%, {backend.State})");
            }
        }

        return line.ToString();
    }

    /// <summary>
    /// The end-of-run summary: every attempt of the run, per endpoint, and what happened, every sentence built from
    /// the counts (plain text, so that a log or a test reads it unwrapped).
    /// </summary>
    public (IRenderable Table, string Notes) Summary(TimeSpan elapsed)
    {
        var services = status.GetServices();
        var service = Service(services);
        var all = backends.ToDictionary(b => b.Port, b => stats.ForPort(b.Port)!.Window(TimeSpan.Zero));
        var total = Math.Max(1, all.Values.Sum(w => w.Count));

        var table = new Table().Border(TableBorder.Rounded);
        table.Title = new TableTitle($"[bold]Summary[/]: {stats.Requests:N0} requests in {Seconds(elapsed)}, policy {Markup.Escape(Policy)}");
        table.AddColumn(new TableColumn("Endpoint").NoWrap());
        table.AddColumn(new TableColumn("Weight").RightAligned());
        table.AddColumn(new TableColumn("Share").RightAligned());
        table.AddColumn(new TableColumn("Attempts").RightAligned());
        table.AddColumn(new TableColumn("Errors").RightAligned());
        table.AddColumn(new TableColumn("p50").RightAligned());
        table.AddColumn(new TableColumn("p99").RightAligned());
        table.AddColumn("State");
        foreach (var backend in backends)
        {
            var window = all[backend.Port];
            table.AddRow(
                $"[bold]{backend.Name}[/] [grey]{Markup.Escape(backend.Spec.Role)}[/]",
                $"{backend.Spec.Weight} [grey]({WeightShare(backend)})[/]",
                Percent(window.Count, total),
                window.Count.ToString("N0", CultureInfo.InvariantCulture),
                stats.ForPort(backend.Port)!.Errors.ToString("N0", CultureInfo.InvariantCulture),
                Millis(window.P50),
                Millis(window.P99),
                StateMarkup(StateOf(services, backend)?.State, panic: false));
        }

        var successRate = stats.Requests == 0 ? 0 : 100.0 * stats.Succeeded / stats.Requests;
        var ejections = events.Count(MeshEvents.Ejected);
        var probes = events.Count(MeshEvents.Probing);
        var readmissions = events.Count(MeshEvents.Readmitted);
        var notes = new StringBuilder();
        notes.AppendLine(CultureInfo.InvariantCulture, $"Discovery source: {Source} (IMeshStatus, service '{serviceName}').");
        notes.AppendLine(CultureInfo.InvariantCulture, $"{stats.Requests:N0} requests: {stats.Succeeded:N0} succeeded ({successRate:0.##}%), {stats.Failed:N0} failed; {stats.Retries:N0} retries.");
        notes.AppendLine(CultureInfo.InvariantCulture, $"Outlier detection: {Count(ejections, "ejection")}, {Count(probes, "probe")}, {Count(readmissions, "readmission")} (the mesh's log events 200-202; the MeshClient meter counted {Count(stats.Ejections, "ejection")}).");

        // What happened, from the counts above and the table: nothing here is a fixed claim.
        var attempts = all.Values.Sum(w => w.Count);
        var shares = string.Join(", ", backends.Select(b =>
            $"{b.Name} {Percent(all[b.Port].Count, Math.Max(1, attempts))} of attempts for {WeightShare(b)} of the weight" +
            (b.Spec.Service is { } other ? $" of {other}" : string.Empty)));
        notes.AppendLine(CultureInfo.InvariantCulture, $"Shares: {shares}.");
        foreach (var route in service?.Routes ?? [])
        {
            var split = string.Join(", ", route.Backends.Select(b =>
                $"{b.Service} {Percent(backends.Where(x => (x.Spec.Service ?? serviceName) == b.Service).Sum(x => all[x.Port].Count), Math.Max(1, attempts))} of attempts for a weight of {b.Weight} ({b.Share:0.#}% now, {b.State})"));
            notes.AppendLine(CultureInfo.InvariantCulture, $"Route '{route.Name}' of {serviceName}: {split}.");
        }
        foreach (var slow in backends.Where(b => b.Spec.Role == "slow"))
        {
            // Within its own service: with --canary, catalog's endpoints share only catalog's part of the attempts.
            var serviceAttempts = Math.Max(1, backends.Where(b => b.Spec.Service == slow.Spec.Service).Sum(b => all[b.Port].Count));
            var share = (double)all[slow.Port].Count / serviceAttempts;
            var weight = (double)slow.Spec.Weight / _serviceWeights[slow.Spec.Service ?? serviceName];
            notes.AppendLine(share < weight
                ? $"{slow.Name}, the slow one, got less than its weight ({Percent(all[slow.Port].Count, serviceAttempts)} against {WeightShare(slow)}): {Policy} moved traffic away from it."
                : $"{slow.Name}, the slow one, got no less than its weight ({Percent(all[slow.Port].Count, serviceAttempts)} against {WeightShare(slow)}): {Policy} does not look at latency.");
        }

        foreach (var backend in backends)
        {
            var name = backend.Name;
            var ejected = events.All.Count(e => e.Kind == MeshEvents.Ejected && NameOf(e.Endpoint) == name);
            var probed = events.All.Count(e => e.Kind == MeshEvents.Probing && NameOf(e.Endpoint) == name);
            var readmitted = events.All.Count(e => e.Kind == MeshEvents.Readmitted && NameOf(e.Endpoint) == name);
            if (ejected + probed + readmitted > 0)
            {
                var end = StateOf(services, backend)?.State;
                notes.AppendLine(CultureInfo.InvariantCulture, $"{name} was ejected {Times(ejected)}, probed {Times(probed)} and readmitted {Times(readmitted)}; it is {end ?? "unknown"} at the end.");
            }
        }

        if (ejections == 0)
        {
            notes.AppendLine("No endpoint was ejected in this run.");
        }

        if (_zones)
        {
            notes.AppendLine(ZoneSummary(service, elapsed));
        }

        var errors = backends.Sum(b => stats.ForPort(b.Port)!.Errors);
        notes.AppendLine(errors == 0
            ? "No attempt failed."
            : stats.Failed == 0
                ? $"Retries on other endpoints hid all {errors:N0} failed attempts from the caller."
                : $"{errors:N0} attempts failed; retries hid some, and {stats.Failed:N0} calls failed.");
        if (_events.Count > 0)
        {
            notes.AppendLine("Events (from the mesh's log events):");
            foreach (var change in _events)
            {
                notes.AppendLine("  " + change);
            }
        }

        return (table, notes.ToString().TrimEnd());
    }

    /// <summary>The zone routing as the status says it, with the local share of the recent attempts counted here.</summary>
    private string ZoneLine(MeshServiceStatus? service, Dictionary<int, (int Count, double? P50, double? P99)> windows)
    {
        var local = backends.Where(IsLocal).Sum(b => windows[b.Port].Count);
        var zoned = Math.Max(1, Zoned.Sum(b => windows[b.Port].Count));
        var zones = service?.ZoneRouting;
        return $"zone routing: caller in {DemoZones.CallerZone}, local share (5 s) {Percent(local, zoned)}" +
            (zones is null ? string.Empty
                : $", spill {(zones.Spill * 100).ToString("0", CultureInfo.InvariantCulture)}%, {DemoZones.CallerZone} {LatencyText(zones.LocalLatency)} / other zones {LatencyText(zones.RemoteLatency)}");
    }

    /// <summary>What zone routing did: the local share before the zone slowed and after, from the attempts counted here.</summary>
    private string ZoneSummary(MeshServiceStatus? service, TimeSpan elapsed)
    {
        var slowAt = options.Duration * DemoZones.SlowFrom;
        int Count(IEnumerable<Backend> set, TimeSpan since) => set.Sum(b => stats.ForPort(b.Port)!.Window(since).Count);
        var all = Count(Zoned, TimeSpan.Zero);
        var after = Count(Zoned, slowAt);
        var localAll = Count(backends.Where(IsLocal), TimeSpan.Zero);
        var localAfter = Count(backends.Where(IsLocal), slowAt);
        var lastFrom = elapsed - Window;
        var spill = service?.ZoneRouting is { } zones ? $"; the spill is {(zones.Spill * 100).ToString("0", CultureInfo.InvariantCulture)}% at the end" : string.Empty;
        return elapsed < slowAt
            ? $"Zone routing: the caller is in {DemoZones.CallerZone}; {Percent(localAll, all)} of the attempts stayed in it (the run ended before its instance slowed at {Seconds(slowAt)}){spill}."
            : $"Zone routing: the caller is in {DemoZones.CallerZone}; {Percent(localAll - localAfter, all - after)} of the attempts stayed in it before its instance slowed at {Seconds(slowAt)}, " +
              $"{Percent(localAfter, after)} after, {Percent(Count(backends.Where(IsLocal), lastFrom), Count(Zoned, lastFrom))} in the last {Seconds(Window)}{spill}.";
    }

    private static bool IsLocal(Backend backend) => backend.Spec.Zone == DemoZones.CallerZone;

    /// <summary>The instances of the zoned service (with --canary too, catalog-v2's have no zone and are not counted).</summary>
    private IEnumerable<Backend> Zoned => backends.Where(b => b.Spec.Zone is not null);

    private static string LatencyText(TimeSpan? latency) => latency is { } value ? Millis(value.TotalMilliseconds) : "-";

    private MeshServiceStatus? Service() => Service(status.GetServices());

    private MeshServiceStatus? Service(IReadOnlyList<MeshServiceStatus> services) =>
        services.FirstOrDefault(s => string.Equals(s.Name, serviceName, StringComparison.OrdinalIgnoreCase));

    /// <summary>The status of the service a backend is an instance of (catalog, or the canary's catalog-v2).</summary>
    private MeshServiceStatus? ServiceOf(IReadOnlyList<MeshServiceStatus> services, Backend backend) =>
        services.FirstOrDefault(s => string.Equals(s.Name, backend.Spec.Service ?? serviceName, StringComparison.OrdinalIgnoreCase));

    private MeshEndpointStatus? StateOf(IReadOnlyList<MeshServiceStatus> services, Backend backend)
    {
        var port = ":" + backend.Port.ToString(CultureInfo.InvariantCulture);
        return ServiceOf(services, backend)?.Endpoints.FirstOrDefault(e => e.Address.TrimEnd('/').EndsWith(port, StringComparison.Ordinal));
    }

    private string WeightShare(Backend backend) => Percent(backend.Spec.Weight, _serviceWeights[backend.Spec.Service ?? serviceName]);

    private static string StateMarkup(string? state, bool panic)
    {
        var text = state switch
        {
            "healthy" => "[green]healthy[/]",
            "ejected" => "[red]ejected[/]",
            "unreachable" => "[red]unreachable[/]",
            "probing" => "[yellow]probing[/]",
            null => "[grey]-[/]",
            _ => Markup.Escape(state),
        };
        return panic ? text + " [red](panic)[/]" : text;
    }

    private static string Count(long count, string noun) => count == 1 ? $"1 {noun}" : $"{count} {noun}s";

    private static string Times(int count) => count == 1 ? "once" : $"{count} times";

    private static string Percent(long part, long whole) =>
        (100.0 * part / Math.Max(1, whole)).ToString("0", CultureInfo.InvariantCulture) + "%";

    private static string Millis(double? value) => value switch
    {
        null => "-",
        < 10 => value.Value.ToString("0.0", CultureInfo.InvariantCulture) + "ms",
        _ => value.Value.ToString("0", CultureInfo.InvariantCulture) + "ms",
    };

    private static string Seconds(TimeSpan value) => value.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + "s";
}
