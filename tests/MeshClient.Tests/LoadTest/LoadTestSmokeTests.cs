using System.Diagnostics;
using System.Xml.Linq;
using MeshClient.LoadTest;
using Xunit.Abstractions;

namespace MeshClient.Tests.LoadTest;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LoadTestRunsAlone
{
    public const string Name = "Load test (runs alone)";
}

/// <summary>
/// A short run of the whole load harness (every scenario, both shapes, raw + mesh + stock) so that it never rots:
/// real child processes, real Kestrel backends, the report and the chart. It checks that the numbers are sane,
/// never how fast anything is (speed claims live in benchmarks/results, not in tests).
/// </summary>
[Collection(LoadTestRunsAlone.Name)]
public sealed class LoadTestSmokeTests(ITestOutputHelper output)
{
    [Fact]
    public async Task AllScenarios_ShortRun_ProducesReportWithSaneNumbers()
    {
        var directory = Directory.CreateTempSubdirectory("meshclient-loadtest-smoke-").FullName;
        try
        {
            var options = LoadTestOptions.Parse([
                "--scenario", "all",
                "--contenders", "raw,mesh,stock",
                "--shapes", "rate,sat",
                "--duration", "250ms",
                "--warmup", "50ms",
                "--process-warmup", "0s",
                "--rate", "200",
                "--concurrency", "4",
                "--churn-period", "300ms",
                "--churn-lag", "50ms",
                "--send-grace", "250ms",
                "--drain-cap", "500ms",
                "--out", directory,
            ]);
            var log = new StringWriter();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            var stopwatch = Stopwatch.StartNew();

            var report = await LoadTestRunner.RunAsync(options, log, timeout.Token);

            output.WriteLine($"load-test smoke run: {stopwatch.Elapsed.TotalSeconds:0.0} s");
            output.WriteLine(log.ToString());
            Assert.True(report.Completed);

            // healthy: 3 contenders × 2 shapes; the 4 degraded scenarios: mesh + stock × 2 shapes (raw is healthy-only).
            Assert.Equal(6 + (4 * 4), report.Cells.Count);
            foreach (var cell in report.Cells)
            {
                var name = $"{cell.Contender}/{cell.Scenario}/{cell.Shape}";
                Assert.True(cell.Count > 0, $"{name}: no request counted");
                Assert.True(cell.Succeeded > 0, $"{name}: no request succeeded");
                Assert.True(cell.P50 > 0, $"{name}: p50 {cell.P50}");
                Assert.True(cell.P50 <= cell.P90 && cell.P90 <= cell.P99 && cell.P99 <= cell.P999 && cell.P999 <= cell.Max, $"{name}: percentiles out of order");
                Assert.True(cell.RequestsPerSecond > 0, $"{name}: no throughput");
                Assert.True(cell.ClientCpuMsPer1k >= 0 && cell.BackendsCpuMsPer1k >= 0, $"{name}: negative CPU");
                Assert.True(cell.AllocatedBytesPerRequest > 0, $"{name}: no allocation measured");
                Assert.True(cell.BackendHitsPerRequest >= 0, $"{name}: negative backend hits");
                Assert.Null(cell.ProxyCpuMsPer1k);
            }

            foreach (var contender in new[] { Contender.Raw, Contender.Mesh, Contender.Stock })
            {
                var healthy = report.Find(contender, Scenario.Healthy, Shape.Rate);
                Assert.NotNull(healthy);
                Assert.True(healthy.SuccessPercent > 90, $"{contender}: {healthy.SuccessPercent}% in healthy");
                Assert.Equal(200, healthy.RequestsPerSecond, tolerance: 80);
            }

            Assert.Contains(report.Cells, c => c.Scenario == Scenario.Churn && c.ChurnEvents > 0);
            Assert.Contains(report.Cells, c => c.Scenario == Scenario.Slow && c.FaultyHitShare > 0);
            Assert.NotEmpty(report.Targets());

            var markdown = await File.ReadAllTextAsync(Path.Combine(directory, LoadTestReport.MarkdownFile));
            Assert.Contains("## Machine", markdown, StringComparison.Ordinal);
            Assert.Contains("CPU model name", markdown, StringComparison.Ordinal);
            Assert.Contains("| mesh | healthy | rate |", markdown, StringComparison.Ordinal);
            Assert.Contains("### Contender vs raw (healthy)", markdown, StringComparison.Ordinal);
            Assert.Contains("## Targets of issue 7", markdown, StringComparison.Ordinal);
            var svg = XDocument.Parse(await File.ReadAllTextAsync(Path.Combine(directory, LoadTestReport.SvgFile)));
            Assert.Equal("svg", svg.Root!.Name.LocalName);
            Assert.Contains(svg.Descendants(), e => e.Name.LocalName == "circle");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("20s", 20_000)]
    [InlineData("500ms", 500)]
    [InlineData("2m", 120_000)]
    [InlineData("1.5", 1_500)]
    public void ParseTime_AcceptsSecondsMillisecondsMinutes(string text, double milliseconds) =>
        Assert.Equal(milliseconds, LoadTestOptions.ParseTime(text).TotalMilliseconds, precision: 6);

    [Fact]
    public void Parse_RejectsUnknownScenarioAndOption()
    {
        Assert.Throws<ArgumentException>(() => LoadTestOptions.Parse(["--scenario", "nope"]));
        Assert.Throws<ArgumentException>(() => LoadTestOptions.Parse(["--frobnicate"]));
        Assert.Equal([Scenario.Healthy, Scenario.Churn], LoadTestOptions.Parse(["--scenario", "churn,healthy"]).Scenarios);
    }

    [Fact]
    public void Percentile_IsNearestRank()
    {
        double[] sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        Assert.Equal(5, LatencyRecorder.Percentile(sorted, 0.5));
        Assert.Equal(9, LatencyRecorder.Percentile(sorted, 0.9));
        Assert.Equal(10, LatencyRecorder.Percentile(sorted, 0.99));
        Assert.Equal(1, LatencyRecorder.Percentile(sorted, 0));
    }

    [Fact]
    public void Recorder_CountsFailuresAndGrowsBeyondItsFirstChunk()
    {
        var recorder = new LatencyRecorder(expected: 10);
        for (var i = 0; i < 200_000; i++)
        {
            recorder.Record(i, success: i % 10 != 0, i % 10 == 0 ? "HTTP 503" : null);
        }

        Assert.Equal(200_000, recorder.Count);
        Assert.Equal(20_000, recorder.Failures);
        Assert.Equal(20_000, recorder.Errors["HTTP 503"]);
        Assert.True(recorder.AllocatedBytes > 0);
        var sorted = recorder.SortedMicroseconds();
        Assert.Equal(200_000, sorted.Length);
        Assert.True(sorted[0] <= sorted[^1]);
    }
}
