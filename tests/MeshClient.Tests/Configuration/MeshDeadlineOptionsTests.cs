using MeshClient.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace MeshClient.Tests.Configuration;

/// <summary>Issue 18, part 2: <c>Mesh:Deadlines</c> binds, defaults to on, and a bad value or key fails naming it.</summary>
public sealed class MeshDeadlineOptionsTests
{
    private static IHost Build(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddMesh();
        return builder.Build();
    }

    [Fact]
    public async Task Propagate_IsOnByDefault_AndBindsGloballyAndPerService()
    {
        using (var plain = Build([]))
        {
            await plain.StartAsync();
            var options = plain.Services.GetRequiredService<MeshOptionsChangeNotifier>().Current;
            Assert.Null(options.Deadlines.Propagate); // unset: on (Handlers/DeadlinePropagation)
        }

        using var host = Build(new()
        {
            ["Mesh:Deadlines:Propagate"] = "false",
            ["Mesh:Services:catalog:Deadlines:Propagate"] = "true",
        });
        await host.StartAsync();
        var bound = host.Services.GetRequiredService<MeshOptionsChangeNotifier>().Current;
        Assert.False(bound.Deadlines.Propagate);
        Assert.True(bound.Services["catalog"].Deadlines.Propagate);
    }

    [Theory]
    [InlineData("Mesh:Deadlines:Propagate", "sometimes", "Mesh:Deadlines:Propagate")]
    [InlineData("Mesh:Services:catalog:Deadlines:Propagate", "yes please", "Mesh:Services:catalog:Deadlines:Propagate")]
    [InlineData("Mesh:Deadlines:Propogate", "false", "Mesh:Deadlines:Propogate is not a configuration key; did you mean Propagate?")]
    [InlineData("Mesh:Services:catalog:Deadlines:Header", "x-deadline", "Mesh:Services:catalog:Deadlines:Header is not a configuration key")]
    public async Task ABadValueOrKey_FailsAtStartUp_NamingTheKey(string key, string value, string expected)
    {
        using var host = Build(new() { [key] = value });
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }
}
