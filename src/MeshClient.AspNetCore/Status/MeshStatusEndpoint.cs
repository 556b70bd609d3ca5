using System.Text.Json;
using MeshClient.Balancing;
using MeshClient.Resilience;
using MeshClient.Status;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace MeshClient.AspNetCore.Status;

/// <summary>
/// Serves <c>GET {pattern}</c>: the JSON snapshot to a client that accepts <c>application/json</c>, the
/// self-contained HTML page (which fetches that JSON every second) to anyone else.
/// </summary>
internal sealed class MeshStatusEndpoint(IMeshStatus status, TimeProvider time)
{
    internal const string JsonContentType = "application/json; charset=utf-8";
    private const string HtmlContentType = "text/html; charset=utf-8";

    // Inline script and style only, and fetches to this origin: nothing is loaded from anywhere else.
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private static readonly Lazy<byte[]> Page = new(LoadPage);

    public Task InvokeAsync(HttpContext context)
    {
        var response = context.Response;
        response.Headers.CacheControl = "no-store";
        response.Headers.Vary = HeaderNames.Accept;
        response.Headers.XContentTypeOptions = "nosniff";
        if (WantsJson(context.Request))
        {
            response.ContentType = JsonContentType;
            return JsonSerializer.SerializeAsync(response.Body, Snapshot(), MeshStatusJsonContext.Default.MeshStatusDocument, context.RequestAborted);
        }

        response.ContentType = HtmlContentType;
        response.Headers.ContentSecurityPolicy = ContentSecurityPolicy;
        var page = Page.Value;
        response.ContentLength = page.Length;
        return response.Body.WriteAsync(page, context.RequestAborted).AsTask();
    }

    /// <summary>Builds the version-1 document from <see cref="IMeshStatus"/>.</summary>
    public MeshStatusDocument Snapshot()
    {
        var services = status.GetServices();
        var documents = new ServiceDocument[services.Count];
        for (var i = 0; i < services.Count; i++)
        {
            var service = services[i];
            var budget = service.RetryBudget;
            var zones = service.ZoneRouting;
            documents[i] = new ServiceDocument(
                service.Name,
                new DiscoveryDocument(service.DiscoverySource, service.LastUpdated, service.LastRefreshed, service.DiscoveryError),
                service.LoadBalancer,
                service.Panic,
                budget is null ? null : Document(budget),
                [.. service.Endpoints.Select(e => new EndpointDocument(
                    e.Id,
                    e.Address,
                    e.Zone,
                    e.Weight,
                    e.EffectiveWeight,
                    e.SlowStartPercent,
                    e.State,
                    e.EjectionTimeLeft is { } left ? Math.Round(left.TotalSeconds, 1) : null,
                    e.LatencyEstimate is { } latency ? Math.Round(latency.TotalMilliseconds, 2) : null,
                    e.InFlight,
                    e.RequestsLastMinute,
                    e.FailuresLastMinute,
                    e.Attempts) { Locality = e.Locality })],
                [.. service.Routes.Select(r => new RouteDocument(
                    r.Name,
                    r.Match,
                    r.Timeout?.TotalSeconds,
                    [.. r.Backends.Select(b => new RouteBackendDocument(b.Service, b.Weight, b.Share, b.State))]))])
            {
                ZoneRouting = zones is null ? null : new ZoneRoutingDocument(
                    zones.Zone,
                    zones.Active,
                    zones.Spill,
                    zones.LocalShare,
                    zones.LocalLatency is { } local ? Math.Round(local.TotalMilliseconds, 2) : null,
                    zones.RemoteLatency is { } remote ? Math.Round(remote.TotalMilliseconds, 2) : null,
                    zones.LatencyRatio,
                    zones.LocalEndpoints,
                    zones.HealthyLocalEndpoints),
                Hedging = service.Hedging is not { } hedging ? null : new HedgingDocument(
                    Math.Round(hedging.Delay.TotalMilliseconds, 2),
                    hedging.Percentile,
                    hedging.MaxAttempts,
                    Document(hedging.Budget)),
            };
        }

        return new MeshStatusDocument(MeshStatusDocument.CurrentVersion, time.GetUtcNow(), documents) { Zone = status.Zone };
    }

    private static RetryBudgetDocument Document(MeshRetryBudgetStatus budget) =>
        new(budget.Window.TotalSeconds, budget.Requests, budget.Retries, budget.Allowed);

    /// <summary>JSON when the client names <c>application/json</c> (or <c>?format=json</c>); a browser gets the page.</summary>
    internal static bool WantsJson(HttpRequest request)
    {
        if (string.Equals(request.Query["format"], "json", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        foreach (var value in request.Headers.Accept)
        {
            if (value is not null && value.Contains("application/json", StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    private static byte[] LoadPage()
    {
        using var stream = typeof(MeshStatusEndpoint).Assembly.GetManifestResourceStream("MeshClient.AspNetCore.mesh-status.html")
            ?? throw new InvalidOperationException("The status page is missing from the MeshClient.AspNetCore assembly.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
