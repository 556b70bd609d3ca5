using MeshClient.Consul;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace MeshClient.Tests.Consul;

/// <summary>A Consul setting of the wrong type is a validation failure naming its key, like any invalid value.</summary>
public sealed class ConsulOptionsBindingTests
{
    [Theory]
    [InlineData("Mesh:Consul:Wait", "forever")]
    [InlineData("Mesh:Consul:MaxResponseBytes", "99999999999")]
    [InlineData("Mesh:Consul:OnlyPassing", "sometimes")]
    [InlineData("Mesh:Consul:Registration:Port", "-eighty")]
    public async Task AValueTheBinderCannotConvert_FailsValidation_NamingTheKey(string key, string value)
    {
        await using var host = MeshHost.Create(new Dictionary<string, string?> { [key] = value }, services => services.AddMesh().AddConsul());
        var error = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<ConsulOptions>>().Value);
        Assert.Contains($"'{key}'", error.Message, StringComparison.Ordinal);
    }
}
