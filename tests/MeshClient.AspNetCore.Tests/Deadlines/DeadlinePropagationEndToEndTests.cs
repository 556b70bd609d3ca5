using System.Diagnostics;
using Grpc.Core;
using MeshClient.AspNetCore.Tests.Deadlines.Proto;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Polly.Timeout;
using Xunit.Abstractions;

namespace MeshClient.AspNetCore.Tests.Deadlines;

/// <summary>
/// Issue 18, part 2, end to end: three real services A → B → C on 127.0.0.1. A is a mesh client that calls B with a
/// deadline; B and C are ASP.NET Core apps with <c>app.UseMeshDeadlines()</c>; B calls C through the mesh with the real
/// <see cref="IHttpClientFactory"/>, passing neither a deadline nor a cancellation token of its own. Real time, with
/// bounds that follow from the order of events (no speed is asserted): C's time left can be no more than A's deadline
/// less what B spent, and no less than A's deadline less everything A waited.
/// </summary>
public sealed class DeadlinePropagationEndToEndTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15); // real time: a hang fails the test instead of blocking it
    private static readonly TimeSpan Truncation = TimeSpan.FromMilliseconds(5); // each hop's header rounds down to the millisecond
    private static readonly Dictionary<string, ServiceApp> NoCalls = [];

    /// <summary>What C saw, and how B's call to C ended.</summary>
    private sealed class Observations
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public TimeSpan? Remaining { get; private set; }

        public string? Header { get; private set; }

        public TaskCompletionSource CAborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Gets how B's last call to C ended: null when it succeeded.</summary>
        public TaskCompletionSource<Exception?> BOutcome { get; private set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Forgets the warm-up.</summary>
        public void Reset()
        {
            Volatile.Write(ref _count, 0);
            BOutcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        /// <summary>Gets or sets whether C holds each request until it is aborted.</summary>
        public bool Hang { get; set; }

        /// <summary>Gets what B spent before calling C, measured by B.</summary>
        public TimeSpan BSpent { get; set; }

        public void Record(string? header)
        {
            Interlocked.Increment(ref _count);
            Remaining = MeshDeadline.Current?.Remaining;
            Header = header;
        }
    }

    /// <summary>A: a mesh client (not a web app), its calls to <paramref name="calls"/>.</summary>
    private static ServiceProvider StartCaller(IReadOnlyDictionary<string, ServiceApp> calls, Action<IServiceCollection>? configure = null)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(ServiceApp.MeshSettings(calls)).Build());
        services.AddLogging();
        services.AddMesh();
        configure?.Invoke(services);
        return services.BuildServiceProvider();
    }

    /// <summary>C: records the deadline it was given; while <see cref="Observations.Hang"/> is set, waits until its request is aborted.</summary>
    private static Task<ServiceApp> StartHttpC(Observations seen) => ServiceApp.StartAsync(NoCalls, null, app => app.Run(async context =>
    {
        seen.Record(context.Request.Headers[MeshDeadline.HeaderName].ToString());
        if (seen.Hang)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(30), context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                seen.CAborted.TrySetResult();
                return;
            }
        }

        await context.Response.WriteAsync("c");
    }));

    /// <summary>B: spends <paramref name="delay"/> (its own work), then calls C through the mesh.</summary>
    private static Task<ServiceApp> StartHttpB(ServiceApp c, Observations seen, TimeSpan delay) => ServiceApp.StartAsync(new Dictionary<string, ServiceApp> { ["c"] = c }, null, app => app.Run(async context =>
    {
        var started = TimeProvider.System.GetTimestamp();
        await Task.Delay(delay); // B's work, deliberately deaf to RequestAborted: the deadline alone must stop what follows
        seen.BSpent = TimeProvider.System.GetElapsedTime(started);
        try
        {
            using var response = await context.RequestServices.GetRequiredService<IHttpClientFactory>().CreateClient().GetAsync("http://c/work");
            seen.BOutcome.TrySetResult(null);
            await context.Response.WriteAsync(await response.Content.ReadAsStringAsync());
        }
        catch (Exception ex)
        {
            seen.BOutcome.TrySetResult(ex);
            context.Response.StatusCode = StatusCodes.Status504GatewayTimeout;
        }
    }));

    [Fact]
    public async Task Http_TheDeadlineCSees_IsAsLessWhatAAndBSpent()
    {
        var seen = new Observations();
        await using var c = await StartHttpC(seen);
        await using var b = await StartHttpB(c, seen, TimeSpan.FromMilliseconds(300));
        await using var a = StartCaller(new Dictionary<string, ServiceApp> { ["b"] = b });
        var client = a.GetRequiredService<IHttpClientFactory>().CreateClient();
        (await client.GetAsync("http://b/warm")).Dispose(); // connections and first runs, without a deadline
        Assert.Null(await seen.BOutcome.Task.WaitAsync(Bound));
        Assert.Equal(string.Empty, seen.Header); // no deadline, no header
        Assert.Null(seen.Remaining);

        var deadline = TimeSpan.FromSeconds(5);
        var watch = Stopwatch.StartNew();
        string body;
        using (MeshDeadline.Begin(deadline))
        {
            body = await client.GetStringAsync("http://b/relay");
        }

        var aWaited = watch.Elapsed;
        Assert.Equal("c", body);
        Assert.True(MeshDeadline.TryParseTimeout(seen.Header, out var header), seen.Header);
        var remaining = seen.Remaining!.Value;
        output.WriteLine($"A's deadline {deadline.TotalMilliseconds} ms, A waited {aWaited.TotalMilliseconds:F1} ms, B spent {seen.BSpent.TotalMilliseconds:F1} ms before calling C; C got mesh-timeout {seen.Header}, {remaining.TotalMilliseconds:F1} ms left in its handler");
        Assert.True(header <= deadline - seen.BSpent, $"C was given {header}, more than A's {deadline} less B's {seen.BSpent}");
        Assert.True(remaining <= header, $"C's handler saw {remaining} left of {header}");
        Assert.True(remaining >= deadline - aWaited - Truncation, $"C saw {remaining} left, less than A's {deadline} less the {aWaited} A waited");
        Assert.Equal(2, seen.Count);
    }

    [Fact]
    public async Task Http_ACallWhoseDeadlineHasPassed_NeverReachesC()
    {
        var seen = new Observations();
        await using var c = await StartHttpC(seen);
        await using var b = await StartHttpB(c, seen, TimeSpan.FromMilliseconds(1000));
        await using var a = StartCaller(new Dictionary<string, ServiceApp> { ["b"] = b });
        var client = a.GetRequiredService<IHttpClientFactory>().CreateClient();
        (await client.GetAsync("http://b/warm")).Dispose(); // connections and first runs: A's call surely reaches B in time
        Assert.Null(await seen.BOutcome.Task.WaitAsync(Bound));
        seen.Reset();

        using (MeshDeadline.Begin(TimeSpan.FromMilliseconds(500)))
        {
            // A's own call ends at the deadline: the mesh's bound cancels it.
            var aFailure = await Assert.ThrowsAsync<DeadlineExceededException>(() => client.GetAsync("http://b/relay"));
            Assert.Equal("b", aFailure.ServiceName);
        }

        // B, deaf to its request's abort, goes on after 1,000 ms and calls C with nothing left: refused unsent.
        var bFailure = Assert.IsType<DeadlineExceededException>(await seen.BOutcome.Task.WaitAsync(Bound));
        output.WriteLine(bFailure.Message);
        Assert.Equal("c", bFailure.ServiceName);
        Assert.Contains("not sent", bFailure.Message, StringComparison.Ordinal);
        Assert.Equal(0, seen.Count);
    }

    [Fact]
    public async Task Http_WorkNobodyWaitsFor_Stops_BsCallToCIsCancelledAtTheDeadline()
    {
        var seen = new Observations();
        await using var c = await StartHttpC(seen);
        await using var b = await StartHttpB(c, seen, TimeSpan.Zero);
        await using var a = StartCaller(new Dictionary<string, ServiceApp> { ["b"] = b });
        var client = a.GetRequiredService<IHttpClientFactory>().CreateClient();
        (await client.GetAsync("http://b/warm")).Dispose(); // connections and first runs
        Assert.Null(await seen.BOutcome.Task.WaitAsync(Bound));
        seen.Reset();
        seen.Hang = true;

        var watch = Stopwatch.StartNew();
        using (MeshDeadline.Begin(TimeSpan.FromSeconds(1)))
        {
            await Assert.ThrowsAsync<DeadlineExceededException>(() => client.GetAsync("http://b/relay"));
        }

        // B passed no token to its call: only the deadline can cancel it, and C sees its request aborted.
        await seen.CAborted.Task.WaitAsync(Bound);
        output.WriteLine($"C's request aborted {watch.Elapsed.TotalMilliseconds:F0} ms after A began (deadline 1,000 ms)");
        var bFailure = Assert.IsType<DeadlineExceededException>(await seen.BOutcome.Task.WaitAsync(Bound));
        Assert.IsType<TimeoutRejectedException>(bFailure.InnerException);
        Assert.Equal(1, seen.Count);
        Assert.True(seen.Remaining <= TimeSpan.FromSeconds(1), $"C was given {seen.Remaining}");
    }

    /// <summary>B: a Grpc.AspNetCore service that spends the asked delay, then calls C through the mesh (no deadline of its own).</summary>
    private sealed class RelayB(Relay.RelayClient next, Observations seen) : Relay.RelayBase
    {
        public override async Task<PassReply> Pass(PassRequest request, ServerCallContext context)
        {
            var started = TimeProvider.System.GetTimestamp();
            await Task.Delay(request.DelayMs); // deaf to the call's cancellation, as above
            seen.BSpent = TimeProvider.System.GetElapsedTime(started);
            try
            {
                var reply = await next.PassAsync(new PassRequest());
                seen.BOutcome.TrySetResult(null);
                return reply;
            }
            catch (RpcException ex)
            {
                seen.BOutcome.TrySetResult(ex);
                throw;
            }
        }
    }

    /// <summary>C: answers with the deadline it was given.</summary>
    private sealed class RelayC(Observations seen) : Relay.RelayBase
    {
        public override Task<PassReply> Pass(PassRequest request, ServerCallContext context)
        {
            var header = context.GetHttpContext().Request.Headers["grpc-timeout"].FirstOrDefault();
            seen.Record(header);
            return Task.FromResult(new PassReply
            {
                GrpcTimeout = header ?? string.Empty,
                RemainingTicks = seen.Remaining?.Ticks ?? -1,
                ServerDeadlineRemainingTicks = context.Deadline == DateTime.MaxValue ? -1 : (context.Deadline - DateTime.UtcNow).Ticks,
            });
        }
    }

    private static Task<ServiceApp> StartGrpcC(Observations seen) =>
        ServiceApp.StartAsync(NoCalls, builder => builder.Services.AddGrpc().Services.AddSingleton(seen), app => app.MapGrpcService<RelayC>(), http2: true);

    private static Task<ServiceApp> StartGrpcB(ServiceApp c, Observations seen) => ServiceApp.StartAsync(
        new Dictionary<string, ServiceApp> { ["c"] = c },
        builder =>
        {
            builder.Services.AddGrpc();
            builder.Services.AddSingleton(seen);
            builder.Services.AddGrpcClient<Relay.RelayClient>(o => o.Address = new Uri("http://c"));
        },
        app => app.MapGrpcService<RelayB>(),
        http2: true);

    private static ServiceProvider StartGrpcCaller(ServiceApp b) =>
        StartCaller(new Dictionary<string, ServiceApp> { ["b"] = b }, services => services.AddGrpcClient<Relay.RelayClient>(o => o.Address = new Uri("http://b")));

    [Fact]
    public async Task Grpc_BsCallToC_CarriesAsGrpcTimeoutLessWhatAAndBSpent()
    {
        var seen = new Observations();
        await using var c = await StartGrpcC(seen);
        await using var b = await StartGrpcB(c, seen);
        await using var a = StartGrpcCaller(b);
        var client = a.GetRequiredService<Relay.RelayClient>();
        await client.PassAsync(new PassRequest()); // warm-up, no deadline: C gets none either
        Assert.Null(await seen.BOutcome.Task.WaitAsync(Bound));
        Assert.Null(seen.Header);

        var deadline = TimeSpan.FromSeconds(5);
        var watch = Stopwatch.StartNew();
        var reply = await client.PassAsync(new PassRequest { DelayMs = 300 }, deadline: DateTime.UtcNow.Add(deadline));
        var aWaited = watch.Elapsed;

        Assert.True(MeshDeadline.TryParseTimeout(reply.GrpcTimeout, out var header), reply.GrpcTimeout);
        var remaining = TimeSpan.FromTicks(reply.RemainingTicks);
        output.WriteLine($"A's deadline {deadline.TotalMilliseconds} ms, A waited {aWaited.TotalMilliseconds:F1} ms, B spent {seen.BSpent.TotalMilliseconds:F1} ms; C got grpc-timeout {reply.GrpcTimeout}, {remaining.TotalMilliseconds:F1} ms left (ServerCallContext.Deadline: {TimeSpan.FromTicks(reply.ServerDeadlineRemainingTicks).TotalMilliseconds:F1} ms)");
        Assert.True(header <= deadline - seen.BSpent, $"C was given {header}, more than A's {deadline} less B's {seen.BSpent}");
        Assert.True(remaining <= header, $"C's handler saw {remaining} left of {header}");

        // A's Grpc.Net.Client counts its deadline on the wall clock (DateTime), the services on the monotonic one: a
        // little more slack than the truncation alone.
        Assert.True(remaining >= deadline - aWaited - TimeSpan.FromMilliseconds(50), $"C saw {remaining} left, less than A's {deadline} less the {aWaited} A waited");
        Assert.True(reply.ServerDeadlineRemainingTicks > 0, "Grpc.AspNetCore in C read the same deadline");
    }

    [Fact]
    public async Task Grpc_ACallWhoseDeadlineHasPassed_NeverReachesC_AndBSeesDeadlineExceeded()
    {
        var seen = new Observations();
        await using var c = await StartGrpcC(seen);
        await using var b = await StartGrpcB(c, seen);
        await using var a = StartGrpcCaller(b);
        var client = a.GetRequiredService<Relay.RelayClient>();
        await client.PassAsync(new PassRequest()); // connections and first runs: A's call surely reaches B in time
        Assert.Null(await seen.BOutcome.Task.WaitAsync(Bound));
        seen.Reset();

        var aFailure = await Assert.ThrowsAsync<RpcException>(() => client.PassAsync(new PassRequest { DelayMs = 1000 }, deadline: DateTime.UtcNow.AddMilliseconds(500)).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, aFailure.StatusCode);

        var bFailure = Assert.IsType<RpcException>(await seen.BOutcome.Task.WaitAsync(Bound));
        output.WriteLine(bFailure.Status.ToString());
        Assert.Equal(StatusCode.DeadlineExceeded, bFailure.StatusCode);
        Assert.Equal(0, seen.Count);
    }
}
