using System.Net;
using System.Net.Http.Headers;
using MeshClient.Model;
using MeshClient.Resilience;
using MeshClient.Tests.Infrastructure;

namespace MeshClient.Tests.Resilience;

/// <summary>Issue 19: the wait before a retry, now the mesh's own (it was Polly's retry strategy).</summary>
public sealed class RetryDelayTests
{
    private static readonly ResilienceSettings Settings = ResilienceSettings.Defaults with
    {
        RetryBaseDelay = TimeSpan.FromMilliseconds(100),
        RetryMaxDelay = TimeSpan.FromMilliseconds(500),
    };

    [Fact]
    public void Backoff_DoublesUpToTheCap_WithEqualJitter()
    {
        var low = new FixedRandom(0);
        var high = new FixedRandom(0.999999);
        double[] full = [100, 200, 400, 500, 500];
        for (var retry = 0; retry < full.Length; retry++)
        {
            Assert.Equal(full[retry] / 2, RetryDelay.Backoff(retry, Settings.RetryBaseDelay, Settings.RetryMaxDelay, low).TotalMilliseconds, 3);
            Assert.Equal(full[retry], RetryDelay.Backoff(retry, Settings.RetryBaseDelay, Settings.RetryMaxDelay, high).TotalMilliseconds, 1);
        }

        Assert.Equal(500, RetryDelay.Backoff(10_000, Settings.RetryBaseDelay, Settings.RetryMaxDelay, high).TotalMilliseconds, 1);
        Assert.Equal(TimeSpan.Zero, RetryDelay.Backoff(3, TimeSpan.Zero, Settings.RetryMaxDelay, high));
    }

    [Fact]
    public void RetryAfter_IsHonouredUpToTheCap_ADatePassedIsNoWait_ARequeueGoesAtOnce()
    {
        var time = FakeTime.Create();
        var random = new FixedRandom(0.5);
        var retry = new RetryState { Retries = 1 };

        Assert.Equal(TimeSpan.FromMilliseconds(300), RetryDelay.Next(retry, Call, Answer(h => h.RetryAfter = new RetryConditionHeaderValue(TimeSpan.FromMilliseconds(300))), Settings, time, random));
        Assert.Equal(TimeSpan.FromMilliseconds(500), RetryDelay.Next(retry, Call, Answer(h => h.RetryAfter = new RetryConditionHeaderValue(TimeSpan.FromSeconds(120))), Settings, time, random));
        var longCap = Settings with { RetryMaxDelay = TimeSpan.FromSeconds(5) }; // an HTTP date counts whole seconds
        Assert.Equal(TimeSpan.FromSeconds(2), RetryDelay.Next(retry, Call, Answer(h => h.RetryAfter = new RetryConditionHeaderValue(time.GetUtcNow().AddSeconds(2))), longCap, time, random));
        Assert.Equal(TimeSpan.Zero, RetryDelay.Next(retry, Call, Answer(h => h.RetryAfter = new RetryConditionHeaderValue(time.GetUtcNow().AddSeconds(-5))), Settings, time, random));
        Assert.Equal(TimeSpan.FromMilliseconds(75), RetryDelay.Next(retry, Call, Answer(_ => { }), Settings, time, random)); // no header: the backoff
        Assert.Equal(TimeSpan.FromMilliseconds(75), RetryDelay.Next(retry, Call, null, Settings, time, random)); // an exception: the backoff
        Assert.Equal(TimeSpan.Zero, RetryDelay.Next(retry with { RequeuePending = true }, Call, null, Settings, time, random));
    }

    [Fact]
    public void ARetryThatAnotherEndpointCanTake_GoesAtOnce_DespiteRetryAfter()
    {
        // Load signals: the asking endpoint is out of the picks, so its Retry-After has nothing to wait for when another
        // endpoint can take the retry; without one the capped Retry-After stands.
        var time = FakeTime.Create();
        var random = new FixedRandom(0.5);
        var retry = new RetryState { Retries = 1 };
        var call = new MeshRequestContext("svc") { RetryElsewhereAtOnce = true };
        var answer = Answer(h => h.RetryAfter = new RetryConditionHeaderValue(TimeSpan.FromMilliseconds(300)));
        Assert.Equal(TimeSpan.Zero, RetryDelay.Next(retry, call, answer, Settings, time, random));
        Assert.Equal(TimeSpan.Zero, RetryDelay.Next(retry, call, null, Settings, time, random)); // a pushback, no header
        call.RetryElsewhereAtOnce = false;
        Assert.Equal(TimeSpan.FromMilliseconds(300), RetryDelay.Next(retry, call, answer, Settings, time, random));
    }

    private static MeshRequestContext Call => new("svc");

    private static HttpResponseMessage Answer(Action<HttpResponseHeaders> headers)
    {
        var response = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
        headers(response.Headers);
        return response;
    }

    private sealed class FixedRandom(double value) : Randomizer
    {
        public override double NextDouble() => value;
    }
}
