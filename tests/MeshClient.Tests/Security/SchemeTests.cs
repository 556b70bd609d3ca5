using System.Net.Http.Headers;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Tests.Infrastructure;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Tests.Security;

/// <summary>
/// A request's scheme is never downgraded: an https request goes only to endpoints that serve https, or fails
/// without sending a byte. Aspire's <c>https+http</c> prefers https and falls back to http. Real Kestrel backends.
/// </summary>
public sealed class SchemeTests
{
    [Fact]
    public async Task AnHttpsRequest_ToAServiceWithOnlyHttpEndpoints_FailsWithoutSendingAByte()
    {
        // Consul's default Scheme is http: every endpoint of "payments" is http://.
        await using var cleartext = await TestBackend.StartAsync("cleartext");
        await using var mesh = MeshHost.Create(MeshHost.ServiceSettings("payments", null, (cleartext, 1)));
        var client = mesh.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "card-data");

        var error = await Assert.ThrowsAsync<NoHttpsEndpointException>(() => client.GetAsync("https://payments/charge"));
        Assert.IsAssignableFrom<MeshException>(error);
        Assert.Equal("payments", error.ServiceName);
        Assert.Contains("'payments'", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, cleartext.Count);

        // Not a retry storm either: one decision, no attempt.
        using var fallback = await client.GetAsync("https+http://payments/charge"); // Aspire's "https, else http"
        Assert.Equal(1, cleartext.Count);
    }

    [Theory]
    [InlineData("https", 20, 0)]
    [InlineData("https+http", 20, 0)]
    [InlineData("http", 10, 10)]
    public async Task AMixedService_SendsHttpsRequestsOnlyToItsHttpsEndpoints(string scheme, int toSecure, int toCleartext)
    {
        using var pki = TestPki.Create();
        await using var cleartext = await TestBackend.StartAsync("cleartext");
        using var certificate = pki.Server();
        var thumbprint = certificate.GetCertHashString();
        await using var secure = await TestBackend.StartHttpsAsync("secure", certificate, ClientCertificateMode.NoCertificate);
        await using var mesh = MeshHost.Create(MeshHost.ServiceSettings("payments", LoadBalancerNames.RoundRobin, (cleartext, 1), (secure, 1)), s =>
            s.ConfigureHttpClientDefaults(b => b.ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                SslOptions = { RemoteCertificateValidationCallback = (_, presented, _, _) => presented?.GetCertHashString() == thumbprint },
            })));
        var client = mesh.CreateClient();

        for (var i = 0; i < 20; i++)
        {
            using var response = await client.GetAsync($"{scheme}://payments/charge");
            response.EnsureSuccessStatusCode();
        }

        Assert.Equal(toSecure, secure.Count);
        Assert.Equal(toCleartext, cleartext.Count);
    }
}
