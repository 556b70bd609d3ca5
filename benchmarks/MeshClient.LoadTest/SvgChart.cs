using System.Globalization;
using System.Security;
using System.Text;

namespace MeshClient.LoadTest;

/// <summary>
/// A hand-written SVG: one panel per scenario (columns) and shape (rows); in each, per contender, its latency
/// percentiles p50 / p90 / p99 / p99.9 on a shared log scale, and its success rate as a bar and a number.
/// </summary>
internal static class SvgChart
{
    private const int PanelPlotHeight = 230;
    private const int ColumnWidth = 56;
    private const int PanelPadLeft = 52;
    private const int PanelPadRight = 14;
    private const int PanelGap = 16;
    private const int Top = 78;
    private const int PanelTitle = 22;
    private const int UnderPlot = 74;

    private static readonly Dictionary<string, string> Colors = new(StringComparer.Ordinal)
    {
        [Contender.Raw] = "#6b6b6b",
        [Contender.RoundRobin] = "#3b3b3b",
        [Contender.Factory1] = "#c4c4c4",
        [Contender.Factory] = "#a0a0a0",
        [Contender.Mesh] = "#1f63b4",
        [Contender.MeshNoLog] = "#6fa0dc",
        [Contender.Stock] = "#e07b00",
        [Contender.Yarp] = "#2a9d3c",
        [Contender.Nginx] = "#8e44ad",
    };

    public static string Render(LoadTestReport report)
    {
        var run = report.Cells.Select(c => c.Run).DefaultIfEmpty(1).Min();
        var cells = report.Cells.Where(c => c.Run == run).ToList();
        var scenarios = LoadTestOptions.AllScenarios.Where(s => cells.Any(c => c.Scenario == s)).ToList();
        var shapes = LoadTestOptions.AllShapes.Where(s => cells.Any(c => c.Shape == s)).ToList();
        var contenders = report.ContendersRun.Where(c => cells.Any(x => x.Contender == c)).ToList();

        var values = cells.SelectMany(c => new[] { c.P50, c.P999 }).Where(v => v > 0 && !double.IsNaN(v)).DefaultIfEmpty(100).ToList();
        var low = Math.Floor(Math.Log10(Math.Max(1, values.Min())));
        var high = Math.Ceiling(Math.Log10(Math.Max(10, values.Max())));
        if (high <= low)
        {
            high = low + 1;
        }

        var panelWidths = scenarios.Select(s => PanelPadLeft + PanelPadRight + (ColumnWidth * Math.Max(1, contenders.Count(c => cells.Any(x => x.Scenario == s && x.Contender == c))))).ToList();
        var width = 20 + panelWidths.Sum() + (PanelGap * Math.Max(0, scenarios.Count - 1)) + 20;
        var panelHeight = PanelTitle + PanelPlotHeight + UnderPlot;
        var height = Top + (shapes.Count * (panelHeight + PanelGap)) + 30;

        var sb = new StringBuilder();
        sb.AppendLine(F($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"11\">"));
        sb.AppendLine(F($"<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>"));
        sb.AppendLine(F($"<text x=\"20\" y=\"24\" font-size=\"15\" font-weight=\"bold\">MeshClient load test: latency percentiles (µs, log scale) and success rate</text>"));
        var m = report.Machine;
        var o = report.Options;
        sb.AppendLine(F($"<text x=\"20\" y=\"42\" fill=\"#444\">{Esc($"{m.CpuModel}, {m.Cores} cores, {m.MemoryGiB:0} GiB, {m.Os}, {m.Runtime} · {m.StartedUtc:yyyy-MM-dd} · D = {o.Duration.TotalSeconds:0.###} s/cell · rate {o.Rate} req/s open model · sat {o.Concurrency} workers")}</text>"));

        // Legend.
        var lx = 20;
        foreach (var contender in contenders)
        {
            sb.AppendLine(F($"<rect x=\"{lx}\" y=\"52\" width=\"12\" height=\"12\" fill=\"{Color(contender)}\"/><text x=\"{lx + 16}\" y=\"62\">{Esc(contender)}</text>"));
            lx += 30 + (7 * contender.Length);
        }

        lx += 12;
        sb.AppendLine(F($"{Marker("p50", lx, 58, "#333")}<text x=\"{lx + 8}\" y=\"62\">p50</text>"));
        sb.AppendLine(F($"{Marker("p90", lx + 42, 58, "#333")}<text x=\"{lx + 50}\" y=\"62\">p90</text>"));
        sb.AppendLine(F($"{Marker("p99", lx + 84, 58, "#333")}<text x=\"{lx + 92}\" y=\"62\">p99</text>"));
        sb.AppendLine(F($"{Marker("p999", lx + 126, 58, "#333")}<text x=\"{lx + 134}\" y=\"62\">p99.9</text>"));
        sb.AppendLine(F($"<text x=\"{lx + 182}\" y=\"62\">bar under each: success %</text>"));

        for (var row = 0; row < shapes.Count; row++)
        {
            var shape = shapes[row];
            var y0 = Top + (row * (panelHeight + PanelGap));
            var x0 = 20;
            for (var col = 0; col < scenarios.Count; col++)
            {
                var scenario = scenarios[col];
                var panelWidth = panelWidths[col];
                var plotTop = y0 + PanelTitle;
                var plotBottom = plotTop + PanelPlotHeight;
                double Y(double micros) => plotBottom - ((Math.Log10(Math.Max(Math.Pow(10, low), micros)) - low) / (high - low) * PanelPlotHeight);

                sb.AppendLine(F($"<rect x=\"{x0}\" y=\"{y0}\" width=\"{panelWidth}\" height=\"{panelHeight}\" fill=\"#fafafa\" stroke=\"#ddd\"/>"));
                sb.AppendLine(F($"<text x=\"{x0 + 8}\" y=\"{y0 + 15}\" font-weight=\"bold\">{Esc(scenario)} · {Esc(shape)}</text>"));

                // Decade grid.
                for (var d = low; d <= high; d++)
                {
                    var gy = Y(Math.Pow(10, d));
                    sb.AppendLine(F($"<line x1=\"{x0 + PanelPadLeft - 4}\" y1=\"{gy:0.#}\" x2=\"{x0 + panelWidth - PanelPadRight}\" y2=\"{gy:0.#}\" stroke=\"#e2e2e2\"/>"));
                    sb.AppendLine(F($"<text x=\"{x0 + PanelPadLeft - 7}\" y=\"{gy + 4:0.#}\" text-anchor=\"end\" fill=\"#666\" font-size=\"10\">{Esc(Decade(d))}</text>"));
                }

                var present = contenders.Where(c => cells.Any(x => x.Scenario == scenario && x.Contender == c)).ToList();
                for (var i = 0; i < present.Count; i++)
                {
                    var contender = present[i];
                    var cx = x0 + PanelPadLeft + (ColumnWidth * i) + (ColumnWidth / 2);
                    var cell = cells.FirstOrDefault(c => c.Scenario == scenario && c.Shape == shape && c.Contender == contender);
                    var color = Color(contender);
                    sb.AppendLine(F($"<text x=\"{cx}\" y=\"{plotBottom + 16}\" text-anchor=\"middle\">{Esc(contender)}</text>"));
                    if (cell is null || cell.Count == 0)
                    {
                        sb.AppendLine(F($"<text x=\"{cx}\" y=\"{plotBottom - 6}\" text-anchor=\"middle\" fill=\"#999\">n/a</text>"));
                        continue;
                    }

                    sb.AppendLine(F($"<line x1=\"{cx}\" y1=\"{Y(cell.P50):0.#}\" x2=\"{cx}\" y2=\"{Y(cell.P999):0.#}\" stroke=\"{color}\" stroke-width=\"2\"/>"));
                    sb.AppendLine(Marker("p50", cx, Y(cell.P50), color, Tip(cell, "p50", cell.P50)));
                    sb.AppendLine(Marker("p90", cx, Y(cell.P90), color, Tip(cell, "p90", cell.P90)));
                    sb.AppendLine(Marker("p99", cx, Y(cell.P99), color, Tip(cell, "p99", cell.P99)));
                    sb.AppendLine(Marker("p999", cx, Y(cell.P999), color, Tip(cell, "p99.9", cell.P999)));
                    sb.AppendLine(F($"<text x=\"{cx + 8}\" y=\"{Y(cell.P50) + 4:0.#}\" font-size=\"9\" fill=\"{color}\">{Short(cell.P50)}</text>"));
                    sb.AppendLine(F($"<text x=\"{cx + 8}\" y=\"{Y(cell.P99) + 4:0.#}\" font-size=\"9\" fill=\"{color}\">{Short(cell.P99)}</text>"));

                    // Success rate: a bar of 0-100% and the number, red below 99.9%.
                    var barWidth = ColumnWidth - 14;
                    var bx = cx - (barWidth / 2);
                    var by = plotBottom + 24;
                    var ok = cell.SuccessPercent;
                    var okColor = ok >= 99.9 ? "#2a9d3c" : ok >= 99 ? "#e0a800" : "#c0392b";
                    sb.AppendLine(F($"<rect x=\"{bx}\" y=\"{by}\" width=\"{barWidth}\" height=\"8\" fill=\"#eee\" stroke=\"#ccc\"/>"));
                    sb.AppendLine(F($"<rect x=\"{bx}\" y=\"{by}\" width=\"{barWidth * ok / 100:0.#}\" height=\"8\" fill=\"{okColor}\"/>"));
                    sb.AppendLine(F($"<text x=\"{cx}\" y=\"{by + 22}\" text-anchor=\"middle\" font-size=\"10\" fill=\"{okColor}\">{(ok >= 99.995 ? "100%" : F($"{ok:0.0#}%"))}</text>"));
                    sb.AppendLine(F($"<text x=\"{cx}\" y=\"{by + 36}\" text-anchor=\"middle\" font-size=\"9\" fill=\"#666\">{cell.RequestsPerSecond:0}/s</text>"));
                }

                x0 += panelWidth + PanelGap;
            }
        }

        sb.AppendLine(F($"<text x=\"20\" y=\"{height - 10}\" fill=\"#666\" font-size=\"10\">Latency of every request (successes and failures), nearest rank; rate = open model, from the intended send time; sat = closed loop. Numbers: benchmarks/results/{LoadTestReport.MarkdownFile}.</text>"));
        sb.AppendLine("</svg>");
        return sb.ToString();
    }

    private static string Marker(string kind, double x, double y, string color, string? title = null)
    {
        var tip = title is null ? string.Empty : F($"<title>{Esc(title)}</title>");
        return kind switch
        {
            "p50" => F($"<circle cx=\"{x:0.#}\" cy=\"{y:0.#}\" r=\"4\" fill=\"{color}\">{tip}</circle>"),
            "p90" => F($"<circle cx=\"{x:0.#}\" cy=\"{y:0.#}\" r=\"4\" fill=\"#fff\" stroke=\"{color}\" stroke-width=\"1.5\">{tip}</circle>"),
            "p99" => F($"<rect x=\"{x - 4:0.#}\" y=\"{y - 4:0.#}\" width=\"8\" height=\"8\" fill=\"{color}\">{tip}</rect>"),
            _ => F($"<rect x=\"{x - 4:0.#}\" y=\"{y - 4:0.#}\" width=\"8\" height=\"8\" fill=\"#fff\" stroke=\"{color}\" stroke-width=\"1.5\">{tip}</rect>"),
        };
    }

    private static string Tip(CellResult cell, string name, double value) =>
        F($"{cell.Contender} · {cell.Scenario} · {cell.Shape}: {name} {value:0} µs, success {cell.SuccessPercent:0.00}%, {cell.RequestsPerSecond:0} req/s");

    private static string Decade(double d) => d switch
    {
        0 => "1µs",
        1 => "10µs",
        2 => "100µs",
        3 => "1ms",
        4 => "10ms",
        5 => "100ms",
        6 => "1s",
        7 => "10s",
        _ => F($"1e{d:0}µs"),
    };

    private static string Short(double micros) => micros switch
    {
        < 1000 => F($"{micros:0}µs"),
        < 10_000 => F($"{micros / 1000:0.0}ms"),
        < 1_000_000 => F($"{micros / 1000:0}ms"),
        _ => F($"{micros / 1_000_000:0.0}s"),
    };

    private static string Color(string contender) => Colors.GetValueOrDefault(contender, "#333");

    private static string Esc(string text) => SecurityElement.Escape(text) ?? string.Empty;

    private static string F(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
