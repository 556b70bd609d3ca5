using System.Net;
using MeshClient.Balancing;
using MeshClient.Model;

namespace MeshClient.Handlers;

/// <summary>
/// Follows redirects above the mesh instead of inside the primary handler, for clients whose primary handler would
/// have followed them (the filter turns its own following off; <see cref="MeshCallHandler"/>, the outermost
/// mesh handler, sends each hop again through the whole mesh). Inside the primary handler a redirect left the mesh
/// half-way: it kept the Host override of the first endpoint, sent a mesh service name to DNS, and skipped
/// balancing and retries. Here every hop is a new logical call: a <c>Location</c> that names a mesh service goes
/// through the mesh again, a relative one goes back to the service that answered (not to its endpoint's address),
/// and the rules are those of .NET's own redirect handling: <c>Authorization</c> is dropped on every redirect, an
/// https to http downgrade is not followed, 303 (and 301/302 after a POST) become a GET without a body, and at most
/// <c>MaxAutomaticRedirections</c> hops are followed. Nothing here runs unless a response is a redirect. A hop to a
/// pass-through host gets no mesh work: the first call's context was a local of that call. A client whose
/// primary handler has credentials .NET would not send across a redirect keeps the primary's own following (see
/// <c>MeshHttpMessageHandlerBuilderFilter</c>): the hops the mesh sends would each pass its authentication stage.
/// </summary>
internal static class MeshRedirects
{
    private static readonly HttpRequestOptionsKey<int> Hops = new("MeshClient.RedirectHops");

    /// <summary>
    /// When <paramref name="response"/> is a redirect to follow, disposes it, points <paramref name="request"/> at the
    /// target (without <c>Authorization</c>) and returns <see langword="true"/>: the caller sends the request again.
    /// </summary>
    public static bool TryFollow(HttpRequestMessage request, HttpResponseMessage response, int maxRedirects)
    {
        if (maxRedirects <= 0 || (int)response.StatusCode is < 300 or > 308)
        {
            return false;
        }

        request.Options.TryGetValue(Hops, out var hops);
        if (hops >= maxRedirects || GetTarget(request, response) is not { } target)
        {
            return false;
        }

        request.Options.Set(Hops, hops + 1);
        response.Dispose();

        // The credentials were for the host asked first; .NET drops them on every redirect too.
        request.Headers.Authorization = null;
        if (ShouldBecomeGet(response.StatusCode, request.Method))
        {
            request.Method = HttpMethod.Get;
            request.Content = null;
            if (request.Headers.TransferEncodingChunked == true)
            {
                request.Headers.TransferEncodingChunked = false;
            }
        }

        request.RequestUri = target;
        return true;
    }

    private static Uri? GetTarget(HttpRequestMessage request, HttpResponseMessage response)
    {
        switch (response.StatusCode)
        {
            case HttpStatusCode.Moved:
            case HttpStatusCode.Found:
            case HttpStatusCode.SeeOther:
            case HttpStatusCode.TemporaryRedirect:
            case HttpStatusCode.MultipleChoices:
            case HttpStatusCode.PermanentRedirect:
                break;
            default:
                return null;
        }

        var location = response.Headers.Location;
        if (location is null || request.RequestUri is not { IsAbsoluteUri: true } current)
        {
            return null;
        }

        // Relative to the URI the caller asked for (http://catalog/...), never to the endpoint that answered.
        var target = location.IsAbsoluteUri ? location : new Uri(current, location);
        if (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps)
        {
            return null;
        }

        if (current.Scheme == Uri.UriSchemeHttps && target.Scheme == Uri.UriSchemeHttp)
        {
            // No downgrade, as in .NET: the caller gets the 3xx.
            return null;
        }

        if (string.IsNullOrEmpty(target.Fragment) && !string.IsNullOrEmpty(current.Fragment))
        {
            target = new UriBuilder(target) { Fragment = current.Fragment[1..] }.Uri;
        }

        return target;
    }

    private static bool ShouldBecomeGet(HttpStatusCode status, HttpMethod method) => status switch
    {
        HttpStatusCode.Moved or HttpStatusCode.Found or HttpStatusCode.MultipleChoices => method == HttpMethod.Post,
        HttpStatusCode.SeeOther => method != HttpMethod.Get && method != HttpMethod.Head,
        _ => false,
    };
}
