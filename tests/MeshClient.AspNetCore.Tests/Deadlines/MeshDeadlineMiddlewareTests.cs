using System.Globalization;
using MeshClient.AspNetCore.Deadlines;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.AspNetCore.Tests.Deadlines;

/// <summary>
/// Issue 18, part 2, inbound: <c>app.UseMeshDeadlines()</c> makes a request's <c>grpc-timeout</c> or <c>mesh-timeout</c>
/// current while it is handled. A real Kestrel app without <c>AddMesh()</c>, on a <see cref="FakeTimeProvider"/> that
/// does not move, so the deadline a handler sees is exactly the header's.
/// </summary>
public sealed class MeshDeadlineMiddlewareTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new();
    private WebApplication _app = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        builder.Services.AddSingleton<TimeProvider>(_time);
        _app = builder.Build();
        _app.UseMeshDeadlines();
        _app.Run(context =>
        {
            // What the handler sees: the time left, and whether it has passed.
            var deadline = MeshDeadline.Current;
            return context.Response.WriteAsync(deadline is null ? "none" : string.Create(CultureInfo.InvariantCulture, $"{deadline.Remaining.Ticks} {deadline.HasPassed}"));
        });
        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        _client = new HttpClient { BaseAddress = new Uri(address) };
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task<string> SeenAsync(params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/");
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await _client.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsStringAsync();
    }

    private static string Ticks(TimeSpan remaining, bool passed = false) => string.Create(CultureInfo.InvariantCulture, $"{remaining.Ticks} {passed}");

    [Fact]
    public async Task GrpcTimeout_BecomesTheCurrentDeadline()
    {
        Assert.Equal(Ticks(TimeSpan.FromMilliseconds(1500)), await SeenAsync(("grpc-timeout", "1500m")));
    }

    [Fact]
    public async Task MeshTimeout_BecomesTheCurrentDeadline()
    {
        Assert.Equal(Ticks(TimeSpan.FromSeconds(2)), await SeenAsync((MeshDeadline.HeaderName, "2S")));
    }

    [Fact]
    public async Task BothHeaders_TheShorterWins()
    {
        Assert.Equal(Ticks(TimeSpan.FromSeconds(1)), await SeenAsync(("grpc-timeout", "1S"), (MeshDeadline.HeaderName, "2S")));
        Assert.Equal(Ticks(TimeSpan.FromMilliseconds(250)), await SeenAsync(("grpc-timeout", "3S"), (MeshDeadline.HeaderName, "250m")));
    }

    [Fact]
    public async Task Zero_IsADeadlineAlreadyPassed()
    {
        Assert.Equal(Ticks(TimeSpan.Zero, passed: true), await SeenAsync((MeshDeadline.HeaderName, "0m")));
    }

    [Theory]
    [InlineData("5s")]
    [InlineData("123456789m")]
    [InlineData("-1S")]
    [InlineData("1.5S")]
    [InlineData("soon")]
    public async Task AMalformedValue_IsIgnored(string value)
    {
        Assert.Equal("none", await SeenAsync((MeshDeadline.HeaderName, value)));
        Assert.Equal("none", await SeenAsync(("grpc-timeout", value)));

        // A malformed one does not hide a well-formed other.
        Assert.Equal(Ticks(TimeSpan.FromSeconds(4)), await SeenAsync(("grpc-timeout", value), (MeshDeadline.HeaderName, "4S")));
    }

    [Fact]
    public async Task TwoValuesOfOneHeader_AreIgnored()
    {
        Assert.Equal("none", await SeenAsync((MeshDeadline.HeaderName, "1S"), (MeshDeadline.HeaderName, "2S")));
    }

    [Fact]
    public async Task WithoutAHeader_ThereIsNoDeadline_AndOneRequestsDeadlineDoesNotReachTheNext()
    {
        Assert.Equal("none", await SeenAsync());
        for (var i = 0; i < 5; i++)
        {
            // The same connection each time (HttpClient keeps it): the deadline ends with its request.
            Assert.Equal(Ticks(TimeSpan.FromSeconds(1)), await SeenAsync((MeshDeadline.HeaderName, "1S")));
            Assert.Equal("none", await SeenAsync());
        }
    }

    [Fact]
    public void Read_TakesExactlyOneWellFormedValue()
    {
        var headers = new HeaderDictionary { ["grpc-timeout"] = "20u", [MeshDeadline.HeaderName] = new(["1S", "2S"]) };
        Assert.Equal(TimeSpan.FromMicroseconds(20), MeshDeadlineMiddleware.Read(headers, "grpc-timeout"));
        Assert.Null(MeshDeadlineMiddleware.Read(headers, MeshDeadline.HeaderName));
        Assert.Null(MeshDeadlineMiddleware.Read(headers, "absent"));
    }
}
