using System.Net;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Model;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace MeshClient.Tests.Resilience;

/// <summary>
/// A request body that cannot be read again is sent once: after a response it is not retried (the caller gets the
/// server's answer), and a failure of our own (a body already consumed) is charged to no endpoint. Real Kestrel.
/// </summary>
public sealed class RequestBodyRetryTests
{
    private static readonly byte[] Body = "a body read once"u8.ToArray();

    public static TheoryData<string> OnceOnlyBodies => ["non-seekable StreamContent", "non-seekable StreamContent with an explicit Content-Length"];

    [Theory]
    [MemberData(nameof(OnceOnlyBodies))]
    public async Task ABodyThatCannotBeReadAgain_GetsTheServersAnswer_AndNoEndpointIsCharged(string body)
    {
        await using var failing = await TestBackend.StartAsync("failing", async context =>
        {
            await Drain(context);
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        });
        await using var healthy = await TestBackend.StartAsync("healthy", async context =>
        {
            await Drain(context);
            await context.Response.WriteAsync("ok");
        });
        var settings = MeshHost.ServiceSettings("pair", LoadBalancerNames.RoundRobin, (failing, 1), (healthy, 1));
        settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
        await using var mesh = MeshHost.Create(settings);
        var client = mesh.CreateClient();

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 10; i++)
        {
            var content = new StreamContent(new NonSeekableStream(Body));
            if (body.EndsWith("Content-Length", StringComparison.Ordinal))
            {
                content.Headers.ContentLength = Body.Length;
            }

            using var response = await client.PutAsync("http://pair/", content); // never the local exception
            statuses.Add(response.StatusCode);
        }

        Assert.All(statuses, s => Assert.True(s is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, s.ToString()));
        Assert.Contains(HttpStatusCode.ServiceUnavailable, statuses);
        Assert.Equal(statuses.Count(s => s == HttpStatusCode.OK), healthy.Count); // it saw no failed retry
        var state = State(mesh, "pair", healthy);
        Assert.Equal(0, state.ConsecutiveFailures);
        Assert.Equal(EndpointStatus.Healthy, state.Status);
    }

    [Fact]
    public async Task ABodyThatCanBeReadAgain_IsStillRetried()
    {
        await using var failing = await TestBackend.StartAsync("failing", async context =>
        {
            await Drain(context);
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        });
        await using var healthy = await TestBackend.StartAsync("healthy", async context => await context.Response.WriteAsync(
            await new StreamReader(context.Request.Body).ReadToEndAsync()));
        var settings = MeshHost.ServiceSettings("pair", LoadBalancerNames.RoundRobin, (failing, 1), (healthy, 1));
        settings["Mesh:Resilience:RetryBaseDelay"] = "00:00:00";
        settings["Mesh:Resilience:ConsecutiveFailures"] = "0";
        await using var mesh = MeshHost.Create(settings);
        var client = mesh.CreateClient();

        HttpContent[] bodies =
        [
            new StreamContent(new MemoryStream(Body)), new ByteArrayContent(Body), new StringContent("a body read once"),
            new ReadOnlyMemoryContent(Body), System.Net.Http.Json.JsonContent.Create("a body read once"),
            new MultipartFormDataContent { new ByteArrayContent(Body), new StreamContent(new MemoryStream(Body)) },
        ];
        foreach (var content in bodies)
        {
            for (var i = 0; i < 2; i++)
            {
                // A fresh copy each time: a content is sent by one call.
                using var request = new HttpRequestMessage(HttpMethod.Put, "http://pair/") { Content = i == 0 ? content : Copy(content) };
                using var response = await client.SendAsync(request);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode); // one of the two went to the 503 first
            }
        }

        Assert.True(failing.Count >= bodies.Length, $"the 503 endpoint took {failing.Count} first attempts");
    }

    [Fact]
    public async Task AFailureOfOurOwn_IsChargedToNoEndpoint()
    {
        // A body that throws when it is read (as one already consumed does): System.Net.Http reports an
        // HttpRequestException around an InvalidOperationException. Six calls: the endpoint is not ejected.
        await using var healthy = await TestBackend.StartAsync("healthy");
        await using var mesh = MeshHost.Create(MeshHost.ServiceSettings("solo", null, (healthy, 1)));
        var client = mesh.CreateClient();
        for (var i = 0; i < 6; i++)
        {
            var error = await Assert.ThrowsAsync<HttpRequestException>(() => client.PutAsync("http://solo/", new ConsumedContent()));
            Assert.IsType<InvalidOperationException>(error.InnerException);
        }

        var state = State(mesh, "solo", healthy);
        Assert.Equal(0, state.ConsecutiveFailures);
        Assert.Equal(EndpointStatus.Healthy, state.Status);
        using var response = await client.GetAsync("http://solo/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static EndpointState State(MeshHost mesh, string service, TestBackend backend) =>
        mesh.Registry.GetTable(service).Snapshot!.All.Single(e => e.Address.EndsWith($":{backend.Port}", StringComparison.Ordinal)).State;

    private static async Task Drain(HttpContext context) => await context.Request.Body.CopyToAsync(Stream.Null);

    private static HttpContent Copy(HttpContent content) => content switch
    {
        StreamContent => new StreamContent(new MemoryStream(Body)),
        StringContent => new StringContent("a body read once"),
        ByteArrayContent => new ByteArrayContent(Body),
        ReadOnlyMemoryContent => new ReadOnlyMemoryContent(Body),
        MultipartFormDataContent => new MultipartFormDataContent { new ByteArrayContent(Body), new StreamContent(new MemoryStream(Body)) },
        _ => System.Net.Http.Json.JsonContent.Create("a body read once"),
    };

    /// <summary>A stream that can be read once and cannot seek, as a network or pipe stream.</summary>
    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override long Seek(long offset, SeekOrigin loc) => throw new NotSupportedException();
    }

    /// <summary>A body that fails when read, as a <see cref="StreamContent"/> over a stream already consumed does.</summary>
    private sealed class ConsumedContent : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            throw new InvalidOperationException("The stream was already consumed. It cannot be read again.");

        protected override bool TryComputeLength(out long length)
        {
            length = 4;
            return true;
        }
    }
}
