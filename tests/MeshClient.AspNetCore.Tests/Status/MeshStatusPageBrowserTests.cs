using Microsoft.Extensions.DependencyInjection;
using System.Diagnostics;
using MeshClient.AspNetCore.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace MeshClient.AspNetCore.Tests.Status;

/// <summary>The status page in a real browser: headless Chromium driven by Playwright.</summary>
public sealed class MeshStatusPageBrowserTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Page_ListsEveryEndpoint_AndShowsAnEjectionWithin2sWithoutReload()
    {
        var total = Stopwatch.StartNew();
        var chromium = Chromium.Find();
        await using var app = await MeshApp.StartAsync(3, configure: MeshApp.ShopRoutes, map: a => a.MapMeshStatus("/mesh"));
        await app.CallAsync(30);
        (await app.MeshClient.GetAsync("http://shop/")).EnsureSuccessStatusCode();

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-dev-shm-usage"],
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 420 } });
        var errors = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                errors.Add(message.Text);
            }
        };
        page.PageError += (_, error) => errors.Add(error);
        var requests = new List<string>();
        page.Request += (_, request) => requests.Add(request.Url);

        var response = await page.GotoAsync(new Uri(app.Address, "/mesh").ToString());
        Assert.NotNull(response);
        Assert.Equal(200, response.Status);

        // Every endpoint is listed, with its state.
        foreach (var backend in app.Backends)
        {
            var row = Row(page, backend);
            await Assertions.Expect(row).ToHaveAttributeAsync("data-state", "healthy", new() { Timeout = 5000 });
            await Assertions.Expect(row.Locator(".state")).ToHaveTextAsync("healthy");
        }

        await Assertions.Expect(page.Locator("section[data-service=catalog] h2")).ToHaveTextAsync("catalog");

        // The routed service: its route's backends with their live shares (catalog-v2, known to nobody, gives its 10% away).
        var canary = page.Locator("section[data-service=shop] tr[data-route=split][data-backend=catalog-v2]");
        await Assertions.Expect(canary).ToHaveAttributeAsync("data-share", "0");
        await Assertions.Expect(canary.Locator(".state")).ToHaveTextAsync("down");
        await Assertions.Expect(page.Locator("section[data-service=shop] tr[data-route=split][data-backend=catalog]")).ToHaveAttributeAsync("data-share", "100");
        await page.EvaluateAsync("() => { window.__sameDocument = true; }");

        // Traffic keeps flowing, as in a live application; then one backend starts to answer 503.
        using var stop = new CancellationTokenSource();
        var traffic = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await app.CallAsync(1);
                await Task.Delay(5);
            }
        });
        var failing = app.Backends[1];
        failing.Failing = true;
        var sinceFailing = Stopwatch.StartNew();
        await Assertions.Expect(Row(page, failing)).ToHaveAttributeAsync("data-state", "ejected", new() { Timeout = 2000 });
        var seenAfter = sinceFailing.Elapsed;
        await Assertions.Expect(Row(page, failing).Locator(".state")).ToHaveTextAsync("ejected");
        await Assertions.Expect(Row(page, failing).Locator(".left")).ToContainTextAsync("s left");
        await Assertions.Expect(Row(page, app.Backends[0])).ToHaveAttributeAsync("data-state", "healthy");
        await Assertions.Expect(Row(page, app.Backends[2])).ToHaveAttributeAsync("data-state", "healthy");

        // Without a reload: the script's state survived.
        Assert.True(await page.EvaluateAsync<bool>("() => window.__sameDocument === true"));
        Assert.Empty(errors);

        // The page loaded nothing but itself and its JSON.
        Assert.All(requests, url => Assert.StartsWith(new Uri(app.Address, "/mesh").ToString(), url, StringComparison.Ordinal));

        await stop.CancelAsync();
        await traffic;
        await Task.Delay(1100); // one more refresh, so the screenshot shows the failures counted
        var screenshot = Path.Combine(AppContext.BaseDirectory, "mesh-status.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        if (Environment.GetEnvironmentVariable("MESH_STATUS_SCREENSHOT") is { Length: > 0 } copy)
        {
            File.Copy(screenshot, copy, overwrite: true);
        }

        output.WriteLine($"Ejection shown {seenAfter.TotalMilliseconds:F0} ms after the backend began failing; the whole browser test took {total.Elapsed.TotalSeconds:F1} s.");
    }

    [Fact]
    public async Task Page_ShowsTheZone_TheZoneRouting_EachEndpointsLocality_AndTheHedging()
    {
        var chromium = Chromium.Find();
        await using var app = await MeshApp.StartAsync(3, services =>
        {
            MeshStatusJsonTests.ZoneSettings(services);
            services.PostConfigure<MeshClient.Configuration.MeshOptions>(o =>
            {
                o.Resilience.Hedging.Enabled = true;
                o.Resilience.Hedging.Percentile = 95; // the fixed 50 ms until 50 answers are measured
            });
        }, a => a.MapMeshStatus("/mesh"));
        await app.CallAsync(30);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-dev-shm-usage"],
        });
        var page = await browser.NewPageAsync();
        var errors = new List<string>();
        page.PageError += (_, error) => errors.Add(error);
        await page.GotoAsync(new Uri(app.Address, "/mesh").ToString());

        await Assertions.Expect(page.Locator("#summary")).ToContainTextAsync("zone zone-a", new() { Timeout = 5000 });
        await Assertions.Expect(Row(page, app.Backends[0])).ToHaveAttributeAsync("data-locality", "local");
        await Assertions.Expect(Row(page, app.Backends[0]).Locator(".locality")).ToHaveTextAsync("local");
        await Assertions.Expect(Row(page, app.Backends[1])).ToHaveAttributeAsync("data-locality", "remote");
        await Assertions.Expect(Row(page, app.Backends[2])).ToHaveAttributeAsync("data-locality", "remote");
        var zoneRouting = page.Locator("section[data-service=catalog] [data-zone-routing]");
        await Assertions.Expect(zoneRouting).ToHaveAttributeAsync("data-zone-routing", "local");
        await Assertions.Expect(zoneRouting).ToContainTextAsync("spill 0%");
        await Assertions.Expect(zoneRouting).ToContainTextAsync("1 of 1 in zone-a healthy");
        var hedging = page.Locator("section[data-service=catalog] [data-hedging]");
        await Assertions.Expect(hedging).ToHaveAttributeAsync("data-hedging", "adaptive");
        await Assertions.Expect(hedging).ToContainTextAsync("after 50 ms (p95), up to 2 at once");
        // How many of the 30 calls were hedged depends on the machine (a first call slower than 50 ms is): the count is shown.
        await Assertions.Expect(hedging).ToContainTextAsync(new System.Text.RegularExpressions.Regex(@"· \d+ of \d+ hedges used \(\d+ requests in 10 s\)"));
        Assert.Empty(errors);
    }

    private static ILocator Row(IPage page, TestBackend backend) =>
        page.Locator($"tr[data-address=\"{backend.Address.ToString().TrimEnd('/')}\"], tr[data-address=\"{backend.Address}\"]");
}
