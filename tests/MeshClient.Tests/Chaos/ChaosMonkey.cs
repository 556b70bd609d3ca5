using System.Diagnostics;
using MeshClient.ConsulServer;

namespace MeshClient.Tests.Chaos;

/// <summary>
/// Breaks things at random, one action every 0.2–1 s, and always leaves at least one backend up: kills a backend
/// (gracefully, or aborting its connections), starts a dead one again (on its old port, or as a new instance on a
/// new port, re-registered in Consul), turns one backend slow, makes Consul answer 500 or 429 for a while, or
/// restarts Consul with its index reset.
/// </summary>
/// <remarks>
/// Without Consul (<paramref name="consul"/> null: static configuration), a backend that comes back as a new instance
/// is published by <paramref name="republish"/> (a configuration reload), and the Consul actions are skipped.
/// </remarks>
internal sealed class ChaosMonkey(
    ConsulTestServer? consul, IReadOnlyList<ChaosBackend> backends, Random random, Stopwatch clock, Action<string> log, Action? republish = null)
{
    private static readonly TimeSpan SlowDelay = TimeSpan.FromMilliseconds(300);
    private static readonly ConsulFault[] Faults = [ConsulFault.NoClusterLeader, ConsulFault.RpcError, ConsulFault.TooManyRequests, ConsulFault.ConnectionLimit];
    private readonly Dictionary<string, int> _counts = new(StringComparer.Ordinal);

    public string Summary => string.Join(", ", _counts.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}"));

    public async Task RunAsync(TimeSpan until)
    {
        while (clock.Elapsed < until)
        {
            var live = backends.Where(b => b.IsUp).ToList();
            var dead = backends.Where(b => !b.IsUp).ToList();
            var roll = random.NextDouble();
            if (roll < 0.30 && live.Count > 1)
            {
                var victim = live[random.Next(live.Count)];
                var abort = random.NextDouble() < 0.5;
                await victim.KillAsync(abort);
                Note(abort ? "kill (abort)" : "kill (graceful)", victim.Name);
            }
            else if (roll < 0.55 && dead.Count > 0)
            {
                var revived = dead[random.Next(dead.Count)];
                await ReviveAsync(revived, samePort: random.NextDouble() < 0.6);
            }
            else if (roll < 0.70)
            {
                foreach (var backend in backends)
                {
                    backend.Delay = TimeSpan.Zero;
                }

                var slow = backends[random.Next(backends.Count)];
                slow.Delay = SlowDelay;
                Note("slow", slow.Name);
            }
            else if (consul is null)
            {
                continue;
            }
            else if (roll < 0.88)
            {
                var fault = Faults[random.Next(Faults.Length)];
                consul.Faults.Inject(fault);
                Note($"consul {fault}", null);
                await Task.Delay(TimeSpan.FromMilliseconds(random.Next(500, 2000)));
                consul.Faults.Clear();
            }
            else
            {
                await consul.StopAsync();
                Note("consul restart with index reset", null);
                await Task.Delay(TimeSpan.FromMilliseconds(random.Next(300, 1500)));
                consul.ResetIndex((ulong)random.Next(2, 10));
                await consul.StartAsync();
            }

            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(200, 1000)));
        }
    }

    /// <summary>Ends the chaos: Consul answers normally, every backend is up and fast.</summary>
    public async Task HealAsync()
    {
        if (consul is not null)
        {
            consul.Faults.Clear();
            await consul.StartAsync();
        }

        foreach (var backend in backends)
        {
            backend.Delay = TimeSpan.Zero;
            if (!backend.IsUp)
            {
                await ReviveAsync(backend, samePort: true);
            }
        }

        log($"{clock.Elapsed.TotalSeconds,6:F1}s heal: {(consul is null ? string.Empty : "Consul normal, ")}every backend up and fast");
    }

    private async Task ReviveAsync(ChaosBackend backend, bool samePort)
    {
        var oldId = backend.ServiceId;
        await backend.StartAsync(samePort);
        if (backend.ServiceId != oldId)
        {
            if (consul is null)
            {
                republish?.Invoke();
            }
            else
            {
                consul.Deregister(oldId);
                consul.Register(ChaosSoakTests.Definition(backend));
            }

            Note("restart (new instance)", backend.Name);
        }
        else
        {
            Note("restart (same port)", backend.Name);
        }
    }

    private void Note(string action, string? target)
    {
        _counts[action] = _counts.GetValueOrDefault(action) + 1;
        log($"{clock.Elapsed.TotalSeconds,6:F1}s {action}{(target is null ? string.Empty : " " + target)}");
    }
}
