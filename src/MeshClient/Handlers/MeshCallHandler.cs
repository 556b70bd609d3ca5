using System.Diagnostics;
using System.Globalization;
using MeshClient.Balancing;
using MeshClient.Model;
using MeshClient.Telemetry;

namespace MeshClient.Handlers;

/// <summary>
/// The outermost mesh handler, one logical call: creates its <see cref="MeshRequestContext"/>, one Internal span named
/// after the service (the parent of the per-attempt Client spans that System.Net.Http creates; the mesh never
/// creates a second Client span), and the call metrics. With no listener it creates no activity.
/// </summary>
/// <remarks>
/// When the mesh took redirect following over from the primary handler (<paramref name="maxRedirects"/> above 0),
/// a redirect is followed here, each hop sent through the whole mesh again (<see cref="MeshRedirects"/>); the check
/// is a status comparison on the path that already awaits, so a call without a redirect costs nothing more.
/// </remarks>
internal sealed class MeshCallHandler(MeshInstrumentation telemetry, TimeProvider time, int maxRedirects = 0) : DelegatingHandler
{
    private static readonly string[] StatusCodes = [.. Enumerable.Range(0, 600).Select(i => i.ToString(CultureInfo.InvariantCulture))];

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var uri = request.RequestUri;
        if (MeshHosts.IsPassThrough(uri))
        {
            return maxRedirects == 0 ? base.SendAsync(request, cancellationToken) : SendPassThroughAsync(request, cancellationToken);
        }

        return SendWithTelemetryAsync(request, uri.IdnHost, cancellationToken);
    }

    private async Task<HttpResponseMessage> SendPassThroughAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        return MeshRedirects.TryFollow(request, response, maxRedirects)
            ? await SendAsync(request, cancellationToken).ConfigureAwait(false)
            : response;
    }

    private async Task<HttpResponseMessage> SendWithTelemetryAsync(HttpRequestMessage request, string service, CancellationToken cancellationToken)
    {
        var context = new MeshRequestContext(service);
        request.Options.Set(MeshRequestContext.Key, context);
        var activity = MeshInstrumentation.Source.StartActivity(service, ActivityKind.Internal);
        var serviceTag = new KeyValuePair<string, object?>(MeshTags.Service, service);
        var countActive = telemetry.ActiveRequests.Enabled;
        if (countActive)
        {
            telemetry.ActiveRequests.Add(1, serviceTag);
        }

        var start = time.GetTimestamp();
        string? errorType = null;
        var failed = false;
        HttpResponseMessage response;
        try
        {
            response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status >= 400)
            {
                errorType = status < StatusCodes.Length ? StatusCodes[status] : status.ToString(CultureInfo.InvariantCulture);
                failed = OutcomeClassifier.IsCallFailure(status);
            }
        }
        catch (Exception ex)
        {
            errorType = ex.GetType().FullName;
            failed = true;
            throw;
        }
        finally
        {
            if (countActive)
            {
                telemetry.ActiveRequests.Add(-1, serviceTag);
            }

            if (context.Attempts > 0 && telemetry.Attempts.Enabled)
            {
                telemetry.Attempts.Add(context.Attempts, serviceTag);
            }

            if (telemetry.RequestDuration.Enabled)
            {
                var tags = new TagList { serviceTag, { MeshTags.Outcome, failed ? "failure" : "success" } };
                if (errorType is not null)
                {
                    tags.Add(MeshTags.ErrorType, errorType);
                }

                telemetry.RequestDuration.Record(time.GetElapsedTime(start).TotalSeconds, tags);
            }

            if (activity is not null)
            {
                Complete(activity, context, errorType);
            }
        }

        // The next hop is a new logical call, with its own span and metrics.
        return MeshRedirects.TryFollow(request, response, maxRedirects)
            ? await SendAsync(request, cancellationToken).ConfigureAwait(false)
            : response;
    }

    private static void Complete(Activity activity, MeshRequestContext context, string? errorType)
    {
        if (activity.IsAllDataRequested)
        {
            activity.SetTag(MeshTags.Service, context.ServiceName);
            activity.SetTag(MeshTags.Attempts, context.Attempts);
            if (context.Policy is { } policy)
            {
                activity.SetTag(MeshTags.Policy, policy);
            }

            if (context.LastEndpoint is { } endpoint)
            {
                activity.SetTag(MeshTags.EndpointId, endpoint.Id);
                if (endpoint.Zone is { } zone)
                {
                    activity.SetTag(MeshTags.EndpointZone, zone);
                }
            }

            if (errorType is not null)
            {
                activity.SetTag(MeshTags.ErrorType, errorType);
                activity.SetStatus(ActivityStatusCode.Error);
            }
        }

        activity.Dispose();
    }
}
