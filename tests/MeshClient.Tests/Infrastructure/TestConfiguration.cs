using Microsoft.Extensions.Configuration;

namespace MeshClient.Tests.Infrastructure;

/// <summary>An in-memory configuration whose whole content can be replaced, firing a reload like a changed file.</summary>
public sealed class TestConfiguration : ConfigurationProvider, IConfigurationSource
{
    public TestConfiguration(IDictionary<string, string?>? initial = null)
    {
        if (initial is not null)
        {
            foreach (var (key, value) in initial)
            {
                Data[key] = value;
            }
        }
    }

    public IConfigurationProvider Build(IConfigurationBuilder builder) => this;

    public void Replace(IDictionary<string, string?> values)
    {
        Data = new Dictionary<string, string?>(values, StringComparer.OrdinalIgnoreCase);
        OnReload();
    }
}
