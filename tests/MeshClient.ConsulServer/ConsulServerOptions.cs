using System.Security.Cryptography.X509Certificates;

namespace MeshClient.ConsulServer;

/// <summary>How the test server behaves; the defaults are those of a Consul CE dev agent with ACLs off.</summary>
public sealed class ConsulServerOptions
{
    /// <summary>Gets or sets the port; 0 (default) lets the OS choose. A restarted server keeps its port.</summary>
    public int Port { get; set; }

    public string Datacenter { get; set; } = "dc1";

    public string NodeName { get; set; } = "consul-test-node";

    public string NodeId { get; set; } = "5d1c4c0e-3f3a-4c1e-9e7d-8a1b2c3d4e5f";

    public string NodeAddress { get; set; } = "127.0.0.1";

    /// <summary>Gets or sets the clock of TTLs, HTTP check intervals, the reaper and blocking waits.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Gets or sets the wait of a blocking query without <c>?wait=</c> (Consul: <c>default_query_time</c>, 5 min).</summary>
    public TimeSpan DefaultQueryTime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Gets or sets the cap on <c>?wait=</c> (Consul: <c>max_query_time</c>, 10 min).</summary>
    public TimeSpan MaxQueryTime { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Gets or sets how often critical services are reaped (Consul: every 30 s).</summary>
    public TimeSpan ReapInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets the floor of <c>DeregisterCriticalServiceAfter</c> (Consul: 1 min).</summary>
    public TimeSpan MinimumDeregisterCriticalServiceAfter { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Gets or sets a value indicating whether the first run of an HTTP check waits a random part of its interval,
    /// as Consul does. Off: the first run is immediate.
    /// </summary>
    public bool HttpCheckInitialStagger { get; set; } = true;

    /// <summary>Gets or sets a value indicating whether <c>ns</c> / <c>partition</c> are accepted (Enterprise); CE answers 400.</summary>
    public bool Enterprise { get; set; }

    /// <summary>Gets or sets a value indicating whether ACLs are enforced.</summary>
    public bool AclEnabled { get; set; }

    /// <summary>Gets or sets the ACL default policy, <c>allow</c> or <c>deny</c> (what the anonymous token may do).</summary>
    public string AclDefaultPolicy { get; set; } = "deny";

    /// <summary>Gets the known ACL tokens.</summary>
    public IList<ConsulAclToken> AclTokens { get; } = new List<ConsulAclToken>();

    /// <summary>Gets or sets the HTTPS certificate; when set the server listens with TLS (HTTP/1.1 and HTTP/2).</summary>
    public X509Certificate2? Certificate { get; set; }

    /// <summary>Gets or sets the CA client certificates must chain to; when set a client certificate is required.</summary>
    public X509Certificate2? ClientCertificateAuthority { get; set; }

    /// <summary>Gets or sets the seed of the server's randomness (jitter, stagger); null for a random seed.</summary>
    public int? Seed { get; set; }
}

/// <summary>An ACL token: its secret (what clients send), accessor id (what error messages show) and rights.</summary>
public sealed record ConsulAclToken(string SecretId, string AccessorId, bool CanRead, bool CanWrite);
