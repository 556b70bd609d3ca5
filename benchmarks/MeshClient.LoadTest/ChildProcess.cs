using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;

namespace MeshClient.LoadTest;

/// <summary>
/// A child process spoken to by lines: commands on its standard input, one answer line each on its standard output.
/// Every child is killed (with its process tree) when disposed, when this process exits, on Ctrl+C and on an
/// unhandled exception; a child also exits by itself when its standard input closes, so even a SIGKILL of the
/// orchestrator leaves nothing behind.
/// </summary>
public sealed class ChildProcess : IAsyncDisposable
{
    private static readonly ConcurrentDictionary<ChildProcess, byte> Live = new();
    private static int s_hooked;

    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
    private readonly SemaphoreSlim _commandLock = new(1, 1);
    private readonly TextWriter _log;

    private ChildProcess(string name, Process process, TextWriter log)
    {
        Name = name;
        _process = process;
        _log = log;
    }

    public string Name { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Starts this very program (the load-test assembly) with <paramref name="arguments"/>.</summary>
    public static ChildProcess StartSelf(string name, IEnumerable<string> arguments, TextWriter log)
    {
        var (file, prefix) = SelfCommand();
        return Start(name, file, [.. prefix, .. arguments], log);
    }

    public static ChildProcess Start(string name, string file, IEnumerable<string> arguments, TextWriter log, string? workingDirectory = null)
    {
        HookExit();
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? AppContext.BaseDirectory,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        // The children must not pick up a URL or environment meant for someone else.
        info.Environment.Remove("ASPNETCORE_URLS");
        info.Environment.Remove("ASPNETCORE_HTTP_PORTS");
        info.Environment.Remove("ASPNETCORE_HTTPS_PORTS");
        info.Environment.Remove("DOTNET_URLS");
        info.Environment["DOTNET_gcServer"] = "0";

        var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {file}.");
        var child = new ChildProcess(name, process, log);
        Live[child] = 0;
        _ = child.PumpAsync(process.StandardOutput, toChannel: true);
        _ = child.PumpAsync(process.StandardError, toChannel: false);
        return child;
    }

    /// <summary>Reads the next line the child printed, e.g. its startup announcement.</summary>
    public async Task<string> ReadLineAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            return await _lines.Reader.ReadAsync(cts.Token);
        }
        catch (ChannelClosedException)
        {
            throw new InvalidOperationException($"{Name} exited (code {(_process.HasExited ? _process.ExitCode : -1)}) before answering.");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"{Name} did not answer within {timeout.TotalSeconds:0.#} s.");
        }
    }

    /// <summary>Sends one command line and returns the child's one-line answer.</summary>
    public async Task<string> CommandAsync(string command, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        await _commandLock.WaitAsync(cancellationToken);
        try
        {
            await _process.StandardInput.WriteLineAsync(command.AsMemory(), cancellationToken);
            await _process.StandardInput.FlushAsync(cancellationToken);
            var answer = await ReadLineAsync(timeout ?? TimeSpan.FromSeconds(15), cancellationToken);
            if (answer.StartsWith("error", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"{Name}: '{command}' failed: {answer}");
            }

            return answer;
        }
        finally
        {
            _commandLock.Release();
        }
    }

    /// <summary>Gets the CPU time (user + system) the child has used so far.</summary>
    public TimeSpan CpuTime()
    {
        try
        {
            _process.Refresh();
            return _process.HasExited ? TimeSpan.Zero : _process.TotalProcessorTime;
        }
        catch (InvalidOperationException)
        {
            return TimeSpan.Zero;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Live.TryRemove(this, out _);
        try
        {
            if (!_process.HasExited)
            {
                // Closing stdin asks the child to stop; it gets a moment, then it is killed.
                _process.StandardInput.Close();
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
                try
                {
                    await _process.WaitForExitAsync(cts.Token);
                }
                catch (OperationCanceledException)
                {
                    Kill();
                }
            }
        }
        catch (Exception e) when (e is InvalidOperationException or IOException)
        {
            Kill();
        }
        finally
        {
            _process.Dispose();
            _commandLock.Dispose();
        }
    }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
        {
            // Already gone.
        }
    }

    /// <summary>Kills every live child; safe to call from any thread, more than once.</summary>
    public static void KillAll()
    {
        foreach (var child in Live.Keys)
        {
            child.Kill();
        }
    }

    private async Task PumpAsync(StreamReader reader, bool toChannel)
    {
        try
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                if (toChannel)
                {
                    _lines.Writer.TryWrite(line);
                }
                else
                {
                    lock (_log)
                    {
                        _log.WriteLine($"  [{Name}] {line}");
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
            // The child is gone.
        }
        finally
        {
            if (toChannel)
            {
                _lines.Writer.TryComplete();
            }
        }
    }

    private static void HookExit()
    {
        if (Interlocked.Exchange(ref s_hooked, 1) == 1)
        {
            return;
        }

        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        AppDomain.CurrentDomain.UnhandledException += (_, _) => KillAll();
    }

    /// <summary>
    /// How to start this program again: its apphost when there is one next to the assembly, otherwise
    /// <c>dotnet exec</c> on the assembly (e.g. when the orchestrator runs inside a test host).
    /// </summary>
    private static (string File, string[] Prefix) SelfCommand()
    {
        var assembly = typeof(ChildProcess).Assembly.Location;
        var directory = Path.GetDirectoryName(assembly)!;
        var name = Path.GetFileNameWithoutExtension(assembly);
        var appHost = Path.Combine(directory, OperatingSystem.IsWindows() ? name + ".exe" : name);
        var runtimeConfig = Path.Combine(directory, name + ".runtimeconfig.json");
        if (File.Exists(appHost) && File.Exists(runtimeConfig))
        {
            return (appHost, []);
        }

        var muxer = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(muxer) || !File.Exists(muxer))
        {
            var current = Environment.ProcessPath;
            muxer = current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet" ? current : "dotnet";
        }

        if (File.Exists(runtimeConfig))
        {
            return (muxer, ["exec", assembly]);
        }

        // Inside a test host that did not copy our runtimeconfig: borrow the host's (same framework, net10.0 +
        // Microsoft.AspNetCore.App) and its deps file, which lists our dependencies as it references us.
        var hostConfig = Directory.GetFiles(directory, "*.runtimeconfig.json").FirstOrDefault()
            ?? throw new InvalidOperationException($"No runtimeconfig.json next to {assembly}: cannot start a child process.");
        var deps = Path.ChangeExtension(Path.ChangeExtension(hostConfig, null), null) + ".deps.json";
        return File.Exists(deps)
            ? (muxer, ["exec", "--runtimeconfig", hostConfig, "--depsfile", deps, assembly])
            : (muxer, ["exec", "--runtimeconfig", hostConfig, assembly]);
    }
}
