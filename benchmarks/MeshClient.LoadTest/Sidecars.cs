using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MeshClient.LoadTest;

/// <summary>A proxy process the client calls through.</summary>
public interface ISidecar : IAsyncDisposable
{
    Uri Address { get; }

    TimeSpan CpuTime();

    Task UpdateAsync(IReadOnlyList<Uri> endpoints);
}

/// <summary>The YARP sidecar: this program with <c>--role yarp</c>.</summary>
internal sealed class YarpSidecar : ISidecar
{
    private readonly ChildProcess _process;
    private string _current;

    private YarpSidecar(ChildProcess process, Uri address, string current)
    {
        _process = process;
        Address = address;
        _current = current;
    }

    public Uri Address { get; }

    public static async Task<YarpSidecar> StartAsync(IReadOnlyList<Uri> endpoints, TextWriter log, CancellationToken cancellationToken)
    {
        var list = Join(endpoints);
        var process = ChildProcess.StartSelf("yarp", ["--role", "yarp", "--destinations", list], log);
        try
        {
            var line = await process.ReadLineAsync(TimeSpan.FromSeconds(30), cancellationToken);
            if (!line.StartsWith("listening ", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"yarp: unexpected first line '{line}'.");
            }

            var port = int.Parse(line["listening ".Length..], CultureInfo.InvariantCulture);
            return new YarpSidecar(process, new Uri($"http://127.0.0.1:{port}"), list);
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    public TimeSpan CpuTime() => _process.CpuTime();

    public async Task UpdateAsync(IReadOnlyList<Uri> endpoints)
    {
        var list = Join(endpoints);
        if (list != _current)
        {
            await _process.CommandAsync("update " + list);
            _current = list;
        }
    }

    public ValueTask DisposeAsync() => _process.DisposeAsync();

    private static string Join(IReadOnlyList<Uri> endpoints) => string.Join(',', endpoints.Select(e => e.GetLeftPart(UriPartial.Authority) + "/"));
}

/// <summary>
/// The nginx sidecar (optional): Debian's nginx with its defaults where they matter: <c>proxy_next_upstream error
/// timeout</c> (a connect error is retried on the next server, a 503 is passed through), <c>max_fails=1
/// fail_timeout=10s</c>; balancing <c>random two least_conn</c> (nginx's power of two choices), upstream keep-alive.
/// It runs under <c>sh</c>, which stops it when our pipe to it closes, so it never outlives the run. Churn rewrites
/// the configuration and reloads (<c>nginx -s reload</c>).
/// </summary>
internal sealed class NginxSidecar : ISidecar
{
    private readonly ChildProcess _process;
    private readonly string _directory;
    private readonly string _binary;
    private readonly int _port;
    private string _current = string.Empty;

    private NginxSidecar(ChildProcess process, string directory, string binary, int port)
    {
        _process = process;
        _directory = directory;
        _binary = binary;
        _port = port;
        Address = new Uri($"http://127.0.0.1:{port}");
    }

    public Uri Address { get; }

    public static string? FindBinary()
    {
        foreach (var candidate in new[] { "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx" })
        {
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(p => Path.Combine(p, "nginx"))
            .FirstOrDefault(File.Exists);
    }

    public static async Task<NginxSidecar> StartAsync(string binary, IReadOnlyList<Uri> endpoints, TextWriter log, CancellationToken cancellationToken)
    {
        var directory = Directory.CreateTempSubdirectory("meshclient-loadtest-nginx-").FullName;
        var port = FreePort();
        var config = Path.Combine(directory, "nginx.conf");
        await File.WriteAllTextAsync(config, Config(directory, port, endpoints), cancellationToken);

        // sh keeps our stdin: when the orchestrator's pipe closes (exit, crash, kill), nginx is told to quit.
        var script = $"\"$0\" -p \"$1\" -c \"$2\" & n=$!; cat > /dev/null; kill -QUIT $n 2>/dev/null; wait $n";
        var process = ChildProcess.Start("nginx", "/bin/sh", ["-c", script, binary, directory, config], log, directory);
        var sidecar = new NginxSidecar(process, directory, binary, port) { _current = Key(endpoints) };
        try
        {
            await sidecar.WaitUntilListeningAsync(cancellationToken);
            return sidecar;
        }
        catch
        {
            await sidecar.DisposeAsync();
            throw;
        }
    }

    public TimeSpan CpuTime() => ProcessTree.CpuTime(_process.Id);

    public async Task UpdateAsync(IReadOnlyList<Uri> endpoints)
    {
        var key = Key(endpoints);
        if (key == _current)
        {
            return;
        }

        var config = Path.Combine(_directory, "nginx.conf");
        await File.WriteAllTextAsync(config, Config(_directory, _port, endpoints));
        using var reload = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(_binary)
        {
            ArgumentList = { "-p", _directory, "-c", config, "-s", "reload" },
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        await reload.WaitForExitAsync();
        _current = key;
    }

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static string Key(IReadOnlyList<Uri> endpoints) => string.Join(',', endpoints.Select(e => e.Authority));

    private async Task WaitUntilListeningAsync(CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _port), cancellationToken);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline && !_process.HasExited)
            {
                await Task.Delay(50, cancellationToken);
            }
        }
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private static string Config(string directory, int port, IReadOnlyList<Uri> endpoints)
    {
        var servers = new StringBuilder();
        foreach (var endpoint in endpoints)
        {
            servers.Append(CultureInfo.InvariantCulture, $"    server {endpoint.Authority};\n");
        }

        return $$"""
            worker_processes auto;
            daemon off;
            pid {{directory}}/nginx.pid;
            error_log stderr crit;
            events { worker_connections 4096; }
            http {
              access_log off;
              client_body_temp_path {{directory}}/body;
              proxy_temp_path {{directory}}/proxy;
              fastcgi_temp_path {{directory}}/fastcgi;
              uwsgi_temp_path {{directory}}/uwsgi;
              scgi_temp_path {{directory}}/scgi;
              upstream backend {
                random two least_conn;
            {{servers}}    keepalive 64;
              }
              server {
                listen 127.0.0.1:{{port}};
                location / {
                  proxy_pass http://backend;
                  proxy_http_version 1.1;
                  proxy_set_header Connection "";
                }
              }
            }
            """;
    }
}

/// <summary>CPU time of a process and all its descendants, from /proc (Linux), including reaped children.</summary>
internal static class ProcessTree
{
    public static TimeSpan CpuTime(int root)
    {
        if (!OperatingSystem.IsLinux())
        {
            return TimeSpan.Zero;
        }

        var parents = new Dictionary<int, int>();
        var ticks = new Dictionary<int, long>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(directory, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');

                // After "pid (comm) ": state ppid ... utime(14) stime(15) cutime(16) cstime(17), 1-based in the full line.
                parents[pid] = int.Parse(fields[1], CultureInfo.InvariantCulture);
                ticks[pid] = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)
                    + long.Parse(fields[13], CultureInfo.InvariantCulture) + long.Parse(fields[14], CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                // The process ended while we looked.
            }
        }

        long total = 0;
        foreach (var (pid, value) in ticks)
        {
            for (var p = pid; p > 1; p = parents.GetValueOrDefault(p))
            {
                if (p == root)
                {
                    total += value;
                    break;
                }
            }
        }

        // USER_HZ is 100 on Linux.
        return TimeSpan.FromMilliseconds(total * 10.0);
    }
}
