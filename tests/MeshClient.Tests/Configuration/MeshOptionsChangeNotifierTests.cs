using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace MeshClient.Tests.Configuration;

/// <summary>Issue 12, item 9: a reload racing a read of the change token never throws.</summary>
public sealed class MeshOptionsChangeNotifierTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task ReloadsRacingTokenReads_NeverThrowObjectDisposedException()
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Mesh:Services:catalog:Endpoints:0:Address"] = "http://127.0.0.1:5001",
        };
        await using var host = MeshHost.Create(settings);
        var notifier = host.Services.GetRequiredService<MeshOptionsChangeNotifier>();

        // A smoke test of the race; the interleaving that threw is pinned down by the test below.
        var errors = 0;
        var reads = 0L;
        Exception? first = null;
        using var stop = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 2).Select(reader => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    _ = notifier.GetChangeToken().HasChanged;
                    Interlocked.Increment(ref reads);
                }
                catch (ObjectDisposedException ex)
                {
                    first ??= ex;
                    Interlocked.Increment(ref errors);
                }
            }
        })).ToArray();

        for (var i = 0; i < 3_000; i++)
        {
            settings["Mesh:Services:catalog:Endpoints:0:Weight"] = (1 + (i % 5)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            host.Configuration.Replace(settings);
        }

        await stop.CancelAsync();
        await Task.WhenAll(readers);
        output.WriteLine($"{reads} token reads during 3,000 reloads, {errors} ObjectDisposedException(s) {first?.Message}");
        Assert.Equal(0, errors);
        Assert.Equal(5, notifier.Current.Services["catalog"].Endpoints[0].Weight);
    }

    [Fact]
    public async Task AReaderThatFetchedTheSourceJustBeforeAReload_GetsACancelledToken()
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Mesh:Services:catalog:Endpoints:0:Address"] = "http://127.0.0.1:5001",
        };
        await using var host = MeshHost.Create(settings);
        var notifier = host.Services.GetRequiredService<MeshOptionsChangeNotifier>();

        // GetChangeToken reads the current token source, then its Token. Replay the interleaving of a reload between
        // the two: before the fix the reload had disposed the source and Token threw ObjectDisposedException.
        var source = (CancellationTokenSource)typeof(MeshClient.Configuration.LastValidOptions<MeshClient.Configuration.MeshOptions>)
            .GetField("_cts", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!
            .GetValue(notifier)!;
        settings["Mesh:Services:catalog:Endpoints:0:Weight"] = "2";
        host.Configuration.Replace(settings);

        var token = source.Token;
        Assert.True(token.IsCancellationRequested); // the reader sees the change it raced, and subscribes again
        Assert.False(notifier.GetChangeToken().HasChanged);
    }
}
