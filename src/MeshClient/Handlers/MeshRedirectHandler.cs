using System.Net;

namespace MeshClient.Handlers;

/// <summary>
/// Follows redirects above the mesh instead of inside the primary handler, for clients whose primary handler would
/// have followed them (the filter turns its own following off). Inside the primary handler a redirect leaves the
/// mesh half-way: it kept the Host override of the first endpoint, sent a mesh service name to DNS, and skipped
/// balancing and retries. Here every hop is a new logical call: a <c>Location</c> that names a mesh service goes
/// through the mesh again, a relative one goes back to the service that answered (not to its endpoint's address),
/// and the rules are those of .NET's own redirect handling: <c>Authorization</c> is dropped on every redirect, an
/// https to http downgrade is not followed, 303 (and 301/302 after a POST) become a GET without a body, and at most
/// <c>MaxAutomaticRedirections</c> hops are followed.
/// </summary>
internal sealed class MeshRedirectHandler(int maxRedirects) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        for (var redirects = 0; redirects < maxRedirects; redirects++)
        {
            var target = GetTarget(request, response);
            if (target is null)
            {
                return response;
            }

            response.Dispose();

            // The credentials were for the host that was asked first; .NET drops them on every redirect too.
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
            response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }

        return response;
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
