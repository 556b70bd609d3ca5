using System.Net.Http.Json;

namespace MeshClient.Resilience;

/// <summary>
/// Says whether a request body can be sent a second time, which a retry after the first attempt reached the
/// server needs: the content may have been read (a refused connection reads nothing, so a requeue needs no check).
/// </summary>
internal static class ResendableContent
{
    /// <summary>
    /// <see langword="true"/> for no body, <see cref="ByteArrayContent"/> (and so <see cref="StringContent"/> and
    /// <see cref="FormUrlEncodedContent"/>), <see cref="ReadOnlyMemoryContent"/>, <see cref="JsonContent"/> (serialized
    /// on each send), a <see cref="MultipartContent"/> whose parts all are, and a <see cref="StreamContent"/> over a
    /// seekable stream (it seeks back to where it started). Anything else (a non-seekable stream above all, or a type
    /// derived from <see cref="StreamContent"/>, whose reading it may change) is sent once.
    /// </summary>
    public static bool CanResend(HttpContent? content) => content switch
    {
        null or ByteArrayContent or ReadOnlyMemoryContent or JsonContent => true,
        MultipartContent multipart => AllParts(multipart),
        StreamContent stream when stream.GetType() == typeof(StreamContent) => IsSeekable(stream),
        _ => false,
    };

    private static bool AllParts(MultipartContent multipart)
    {
        foreach (var part in multipart)
        {
            if (!CanResend(part))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Whether the stream under a <see cref="StreamContent"/> can seek. Its computed <c>Content-Length</c> would say
    /// so, but an explicit one (a non-seekable upload of known length) is indistinguishable from it; the stream that
    /// <see cref="HttpContent.ReadAsStream()"/> returns wraps the content's own and reports its
    /// <see cref="Stream.CanSeek"/>, without reading, moving or consuming anything.
    /// </summary>
    private static bool IsSeekable(StreamContent content)
    {
        try
        {
            return content.ReadAsStream().CanSeek;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException or NotSupportedException or HttpRequestException)
        {
            return false;
        }
    }
}
