using MeshClient.Configuration;
using MeshClient.Hedging;
using MeshClient.Model;
using MeshClient.Resilience;
using MeshClient.Telemetry;
using MeshClient.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace MeshClient.Tests.Hedging;

/// <summary>The hedging options, their resolution per service, the adaptive delay's windows and the hedge's copy of a request.</summary>
public sealed class HedgingPolicyTests
{
    [Theory]
    [InlineData("Mesh:Resilience:Hedging:MaxAttempts", "1", "Mesh:Resilience:Hedging:MaxAttempts must be between 2 and 10, was 1.")]
    [InlineData("Mesh:Services:catalog:Resilience:Hedging:MaxAttempts", "11", "Mesh:Services:catalog:Resilience:Hedging:MaxAttempts must be between 2 and 10, was 11.")]
    [InlineData("Mesh:Resilience:Hedging:Percentile", "40", "Mesh:Resilience:Hedging:Percentile must be between 50 and 99.99, was 40.")]
    [InlineData("Mesh:Resilience:Hedging:BudgetPercent", "101", "Mesh:Resilience:Hedging:BudgetPercent must be between 0 and 100, was 101.")]
    [InlineData("Mesh:Services:catalog:Resilience:Hedging:Delay", "-00:00:01", "Mesh:Services:catalog:Resilience:Hedging:Delay must be between")]
    [InlineData("Mesh:Resilience:Hedging:MinDelay", "00:00:02", "Mesh:Resilience:Hedging:MinDelay (00:00:02) must not be longer than Mesh:Resilience:Hedging:MaxDelay (00:00:01).")]
    [InlineData("Mesh:Resilience:Hedging:Delai", "00:00:01", "Mesh:Resilience:Hedging:Delai is not a configuration key; did you mean Delay?")]
    [InlineData("Mesh:Services:web:Routes:0:Hedging:MaxAttempts", "1", "Mesh:Services:web:Routes:0:Hedging:MaxAttempts must be between 2 and 10, was 1.")]
    [InlineData("Mesh:Services:web:Routes:0:Hedging:Delai", "00:00:01", "Mesh:Services:web:Routes:0:Hedging:Delai is not a configuration key; did you mean Delay?")]
    public async Task InvalidHedgingConfiguration_FailsAtStartUp_NamingTheKey(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mesh:Services:catalog:Endpoints:0:Address"] = "http://127.0.0.1:5001",
            [key] = value,
        };
        if (key.EndsWith(":MinDelay", StringComparison.Ordinal))
        {
            settings["Mesh:Resilience:Hedging:MaxDelay"] = "00:00:01";
        }

        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddMesh();
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Settings_TakeTheMostSpecificValue_FieldByField()
    {
        var global = new MeshHedgingOptions { Enabled = true, Delay = TimeSpan.FromMilliseconds(30), BudgetPercent = 5 };
        var service = new MeshHedgingOptions { Delay = TimeSpan.FromMilliseconds(80), Percentile = 95 };
        var route = new MeshHedgingOptions { MaxAttempts = 3 };

        var defaults = HedgingSettings.Resolve(null, null);
        Assert.False(defaults.Enabled);
        Assert.Equal(TimeSpan.FromMilliseconds(50), defaults.Delay);
        Assert.Equal(2, defaults.MaxAttempts);
        Assert.Equal(10, defaults.BudgetPercent);
        Assert.Null(defaults.Percentile);

        var settings = HedgingSettings.Resolve(global, service, route);
        Assert.True(settings.Enabled);
        Assert.Equal(TimeSpan.FromMilliseconds(80), settings.Delay);
        Assert.Equal(95, settings.Percentile);
        Assert.Equal(5, settings.BudgetPercent);
        Assert.Equal(3, settings.MaxAttempts);
    }

    [Fact]
    public void TheAdaptiveDelay_FollowsThePercentile_OverTwoWindows_BoundedAndFixedUntilMeasured()
    {
        var time = new FakeTimeProvider();
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var telemetry = new MeshInstrumentation(services.GetRequiredService<IMeterFactory>());
        var settings = new HedgingSettings { Enabled = true, Delay = TimeSpan.FromMilliseconds(50), Percentile = 95, MinDelay = TimeSpan.FromMilliseconds(2), MaxDelay = TimeSpan.FromMilliseconds(500) };
        var latency = new LatencyHistogram(time, HedgingSettings.LatencyWindow);
        var policy = new HedgingPolicy("catalog", null, settings, new RetryBudget(time, 10, 1, HedgingSettings.BudgetWindow), latency, time, telemetry);

        // Too few answers: the fixed delay.
        Record(policy, time, TimeSpan.FromMilliseconds(10), 49);
        Assert.Equal(TimeSpan.FromMilliseconds(50), policy.Delay(time.GetTimestamp()));

        // 95 answers of 10 ms and 5 of 300 ms: p95 is 10 ms (its bucket's upper bound, at most 6.25% above) — once the
        // cached delay is a second old.
        Record(policy, time, TimeSpan.FromMilliseconds(10), 46);
        Record(policy, time, TimeSpan.FromMilliseconds(300), 5);
        Assert.Equal(TimeSpan.FromMilliseconds(50), policy.Delay(time.GetTimestamp()));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.InRange(policy.Delay(time.GetTimestamp()), TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(10.625));

        // The next window still counts the last one …
        time.Advance(TimeSpan.FromSeconds(10));
        Record(policy, time, TimeSpan.FromMilliseconds(300), 20);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.InRange(policy.Delay(time.GetTimestamp()), TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(320));

        // … bounded by MaxDelay and MinDelay …
        Record(policy, time, TimeSpan.FromSeconds(2), 200);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(TimeSpan.FromMilliseconds(500), policy.Delay(time.GetTimestamp()));

        // … and two windows later it has forgotten everything: the fixed delay again, then the new latency.
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(TimeSpan.FromMilliseconds(50), policy.Delay(time.GetTimestamp()));
        Record(policy, time, TimeSpan.FromMicroseconds(300), 100);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(TimeSpan.FromMilliseconds(2), policy.Delay(time.GetTimestamp()));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(1_000)]
    [InlineData(123_456)]
    [InlineData(uint.MaxValue)]
    public void TheHistogramBuckets_HoldTheirValue_Within6Percent(long microseconds)
    {
        var bucket = LatencyHistogram.BucketOf(microseconds);
        Assert.InRange(bucket, 0, LatencyHistogram.BucketCount - 1);
        var upper = LatencyHistogram.UpperBound(bucket);
        Assert.True(upper > microseconds, $"{microseconds} µs is above its bucket's bound {upper}");
        Assert.True(upper <= Math.Max(microseconds + 1, microseconds * 1.0625 + 1), $"{microseconds} µs: bound {upper}");
        Assert.True(bucket == 0 || LatencyHistogram.UpperBound(bucket - 1) <= microseconds);
    }

    [Fact]
    public async Task TheHedgesCopy_KeepsTheRequest_ButNotWhatEachAttemptWrites()
    {
        var content = new StringContent("q");
        var request = new HttpRequestMessage(HttpMethod.Get, "http://10.0.0.1:8080/items?x=1") { Version = new Version(2, 0), VersionPolicy = HttpVersionPolicy.RequestVersionOrHigher, Content = content };
        request.Headers.Add("x-tenant", ["a", "b"]);
        request.Headers.Host = "10.0.0.1:8080"; // set by the balancer for the first attempt
        request.Headers.TryAddWithoutValidation("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        var optionKey = new HttpRequestOptionsKey<object>("app.option"); // the caller's own options go with each copy
        var option = new object();
        request.Options.Set(optionKey, option);

        var clone = HedgeRequest.Clone(request, new Uri("http://catalog/items?x=1"), callerHost: null);
        Assert.Equal(new Uri("http://catalog/items?x=1"), clone.RequestUri);
        Assert.Equal(HttpMethod.Get, clone.Method);
        Assert.Equal(new Version(2, 0), clone.Version);
        Assert.Equal(HttpVersionPolicy.RequestVersionOrHigher, clone.VersionPolicy);
        Assert.Equal(["a", "b"], clone.Headers.GetValues("x-tenant"));
        Assert.Null(clone.Headers.Host);
        Assert.False(clone.Headers.Contains("traceparent"));
        Assert.True(clone.Options.TryGetValue(optionKey, out var cloned) && ReferenceEquals(option, cloned));
        Assert.Same(content, clone.Content);

        Assert.Equal("catalog.internal", HedgeRequest.Clone(request, new Uri("http://catalog/"), "catalog.internal").Headers.Host);

        HedgeRequest.Release(clone);
        Assert.Equal("q", await content.ReadAsStringAsync()); // the caller's content is not disposed
    }

    [Theory]
    [InlineData("GET", true)]
    [InlineData("HEAD", true)]
    [InlineData("OPTIONS", true)]
    [InlineData("TRACE", true)]
    [InlineData("PUT", false)]
    [InlineData("DELETE", false)]
    [InlineData("POST", false)]
    [InlineData("PATCH", false)]
    public void OnlySafeMethods_AreHedged(string method, bool hedged) =>
        Assert.Equal(hedged, HedgeRequest.CanHedge(new HttpRequestMessage(new HttpMethod(method), "http://catalog/")));

    [Fact]
    public void ABodyThatCannotBeReadTwiceAtOnce_IsNotHedged()
    {
        Assert.True(HedgeRequest.CanHedge(new HttpRequestMessage(HttpMethod.Get, "http://catalog/") { Content = new ByteArrayContent([1]) }));
        Assert.True(HedgeRequest.CanHedge(new HttpRequestMessage(HttpMethod.Get, "http://catalog/") { Content = new ReadOnlyMemoryContent(new byte[1]) }));
        Assert.False(HedgeRequest.CanHedge(new HttpRequestMessage(HttpMethod.Get, "http://catalog/") { Content = new StreamContent(new MemoryStream([1])) }));
    }

    private static void Record(HedgingPolicy policy, FakeTimeProvider time, TimeSpan latency, int count)
    {
        var now = time.GetTimestamp();
        var start = now - (long)(latency.TotalSeconds * time.TimestampFrequency);
        for (var i = 0; i < count; i++)
        {
            policy.RecordAnswer(start, now);
        }
    }
}
