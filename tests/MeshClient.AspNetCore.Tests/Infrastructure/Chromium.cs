namespace MeshClient.AspNetCore.Tests.Infrastructure;

/// <summary>
/// Finds the Chromium that the browser tests drive: Debian's <c>chromium</c> package (Playwright cannot download
/// its own browser here). <c>MESH_CHROMIUM</c> names another executable.
/// </summary>
public static class Chromium
{
    public static string Find()
    {
        if (Environment.GetEnvironmentVariable("MESH_CHROMIUM") is { Length: > 0 } configured)
        {
            return File.Exists(configured) ? configured : throw new FileNotFoundException($"MESH_CHROMIUM names {configured}, which does not exist.", configured);
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        foreach (var directory in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Append("/usr/bin"))
        {
            foreach (var name in new[] { "chromium", "chromium-browser" })
            {
                var candidate = Path.Combine(directory, name);
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        // Never skipped: a machine (CI=true included) without the browser fails the test, so a broken CI is visible.
        var ci = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase) ? " (CI=true)" : string.Empty;
        throw new InvalidOperationException(
            $"No chromium on PATH{ci}: the browser test of the status page needs it. Install it with `apt-get install -y chromium` (.ci/run does), or set MESH_CHROMIUM.");
    }
}
