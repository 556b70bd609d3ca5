using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;

namespace MeshClient.LoadTest;

/// <summary>What the numbers were measured on.</summary>
public sealed record MachineInfo
{
    public required DateTime StartedUtc { get; init; }

    public required string CpuModel { get; init; }

    public required string CpuMhz { get; init; }

    public required bool Hypervisor { get; init; }

    public required int Cores { get; init; }

    public required double MemoryGiB { get; init; }

    public required string Os { get; init; }

    public required string Runtime { get; init; }

    public required string Gc { get; init; }

    public required string LoadAverage { get; init; }

    public required IReadOnlyList<string> Assemblies { get; init; }

    public required string? GitCommit { get; init; }

    public static MachineInfo Capture()
    {
        var cpuinfo = Read("/proc/cpuinfo");
        string Field(string name) => cpuinfo
            .Split('\n')
            .Where(l => l.StartsWith(name, StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim())
            .FirstOrDefault() ?? "unknown";
        var memTotal = Read("/proc/meminfo").Split('\n').FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        var memKb = memTotal is null ? 0 : double.Parse(memTotal.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        var os = Read("/etc/os-release").Split('\n').FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?["PRETTY_NAME=".Length..].Trim('"');
        return new MachineInfo
        {
            StartedUtc = DateTime.UtcNow,
            CpuModel = OperatingSystem.IsLinux() ? Field("model name") : RuntimeInformation.ProcessArchitecture.ToString(),
            CpuMhz = Field("cpu MHz"),
            Hypervisor = cpuinfo.Contains(" hypervisor", StringComparison.Ordinal),
            Cores = Environment.ProcessorCount,
            MemoryGiB = memKb / 1024 / 1024,
            Os = $"{os ?? RuntimeInformation.OSDescription} ({RuntimeInformation.OSArchitecture})",
            Runtime = RuntimeInformation.FrameworkDescription,
            Gc = LoadTestRunner.GcDescription(),
            LoadAverage = Read("/proc/loadavg").Trim(),
            Assemblies = [
                Version(typeof(Microsoft.Extensions.DependencyInjection.MeshServiceCollectionExtensions)),
                Version(typeof(Yarp.ReverseProxy.Configuration.RouteConfig)),
                Version(typeof(Microsoft.Extensions.ServiceDiscovery.ServiceEndpointResolver)),
                Version(typeof(Microsoft.Extensions.Http.Resilience.HttpStandardResilienceOptions)),
                Version(typeof(Polly.ResiliencePipeline)),
                Version(typeof(Microsoft.Extensions.Hosting.Host)),
            ],
            GitCommit = ReadGitCommit(),
        };
    }

    private static string Version(Type type)
    {
        var assembly = type.Assembly;
        var version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? assembly.GetName().Version?.ToString() ?? "?";
        return $"{assembly.GetName().Name} {version}";
    }

    private static string Read(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path) : string.Empty;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return string.Empty;
        }
    }

    private static string? ReadGitCommit()
    {
        try
        {
            using var git = Process.Start(new ProcessStartInfo("git", "describe --always --dirty --abbrev=12")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = Environment.CurrentDirectory,
            });
            if (git is null)
            {
                return null;
            }

            var text = git.StandardOutput.ReadToEnd().Trim();
            return git.WaitForExit(5000) && git.ExitCode == 0 && text.Length > 0 ? text : null;
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
