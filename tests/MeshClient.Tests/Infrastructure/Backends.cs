namespace MeshClient.Tests.Infrastructure;

/// <summary>A set of test backends disposed together.</summary>
public sealed class Backends : List<TestBackend>, IAsyncDisposable
{
    public static async Task<Backends> StartAsync(int count)
    {
        var backends = new Backends();
        for (var i = 0; i < count; i++)
        {
            backends.Add(await TestBackend.StartAsync("b" + i));
        }

        return backends;
    }

    public (TestBackend Backend, int Weight)[] WithWeight(int weight) => [.. this.Select(b => (b, weight))];

    public async ValueTask DisposeAsync()
    {
        foreach (var backend in this)
        {
            await backend.DisposeAsync();
        }
    }
}
