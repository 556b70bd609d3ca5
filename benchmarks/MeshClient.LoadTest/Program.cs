using System.Globalization;
using System.Runtime.InteropServices;
using MeshClient.LoadTest.Roles;

namespace MeshClient.LoadTest;

/// <summary>
/// The entry point of every process of a run: the orchestrator (default), and its children
/// <c>--role backends</c> and <c>--role yarp</c>.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        LoadTestOptions options;
        try
        {
            if (args.Contains("--help") || args.Contains("-h"))
            {
                Console.WriteLine(LoadTestOptions.Usage);
                return 0;
            }

            options = LoadTestOptions.Parse(args);
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync(e.Message);
            await Console.Error.WriteLineAsync(LoadTestOptions.Usage);
            return 2;
        }

        switch (options.Role)
        {
            case "backends":
                return await BackendsRole.RunAsync(Console.In, Console.Out);
            case "yarp":
                return await YarpRole.RunAsync(options, Console.In, Console.Out);
            case "run":
                break;
            default:
                await Console.Error.WriteLineAsync($"Unknown role '{options.Role}'.");
                return 2;
        }

        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            // First Ctrl+C: stop sending, write what was measured, kill the children. Second: die at once
            // (ProcessExit still kills the children).
            if (!cts.IsCancellationRequested)
            {
                e.Cancel = true;
                Console.Error.WriteLine("Interrupted: finishing the current cell's bookkeeping and stopping the child processes...");
                cts.Cancel();
            }
        };
        Console.CancelKeyPress += onCancel;

        // SIGTERM (e.g. `timeout`, a CI runner giving up) gets the same orderly stop as the first Ctrl+C.
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            if (!cts.IsCancellationRequested)
            {
                context.Cancel = true;
                cts.Cancel();
            }
        });
        try
        {
            var report = await LoadTestRunner.RunAsync(options, Console.Out, cts.Token);
            return report.Cells.Count > 0 ? 0 : 1;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await Console.Error.WriteLineAsync($"Load test failed: {e}");
            return 1;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            ChildProcess.KillAll();
        }
    }
}
