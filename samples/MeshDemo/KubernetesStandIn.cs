using System.Globalization;
using System.Security.Cryptography;
using k8s.Models;
using MeshClient.KubernetesServer;

namespace MeshDemo;

/// <summary>
/// With --kubernetes: the Kubernetes API stand-in of the tests (tests/MeshClient.KubernetesServer), in-process on
/// 127.0.0.1 with a port chosen by the OS, serving one EndpointSlice per backend (a slice's ports apply to all its
/// endpoints, and every backend has its own port), and a kubeconfig file (token auth, plain http) that points the
/// mesh's <c>AddKubernetes()</c> at it.
/// </summary>
internal sealed class KubernetesStandIn : IAsyncDisposable
{
    /// <summary>The namespace the demo's Service lives in.</summary>
    public const string Namespace = "demo";

    private readonly KubernetesTestServer _server;
    private readonly string _directory;

    private KubernetesStandIn(KubernetesTestServer server, string directory, string kubeConfigPath)
    {
        _server = server;
        _directory = directory;
        KubeConfigPath = kubeConfigPath;
    }

    /// <summary>Gets the path of the kubeconfig file written for the mesh.</summary>
    public string KubeConfigPath { get; }

    /// <summary>Gets the stand-in's address.</summary>
    public Uri Address => _server.Address;

    /// <summary>Starts the stand-in and publishes the Service <paramref name="serviceName"/> with a pod per backend.</summary>
    public static async Task<KubernetesStandIn> StartAsync(string serviceName, IEnumerable<Backend> backends)
    {
        var server = await KubernetesTestServer.CreateAsync();
        server.Token = Convert.ToHexString(RandomNumberGenerator.GetBytes(24)); // any other token gets 401
        foreach (var backend in backends)
        {
            server.Apply(Namespace, Slice(serviceName, backend));
        }

        var directory = Directory.CreateTempSubdirectory("meshdemo-k8s-").FullName;
        var kubeConfigPath = Path.Combine(directory, "config");
        await File.WriteAllTextAsync(kubeConfigPath, KubeConfig(server.Address, server.Token));
        return new KubernetesStandIn(server, directory, kubeConfigPath);
    }

    /// <summary>The slice of one backend: its pod on 127.0.0.1, ready, with the backend's port named <c>http</c>.</summary>
    private static V1EndpointSlice Slice(string serviceName, Backend backend) => new()
    {
        ApiVersion = "discovery.k8s.io/v1",
        Kind = "EndpointSlice",
        Metadata = new V1ObjectMeta
        {
            Name = $"{serviceName}-{backend.Name}",
            NamespaceProperty = Namespace,
            Labels = new Dictionary<string, string>
            {
                ["kubernetes.io/service-name"] = serviceName,
                ["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io",
            },
        },
        AddressType = "IPv4",
        Endpoints =
        [
            new V1Endpoint
            {
                Addresses = [backend.Address.Host],
                Conditions = new V1EndpointConditions { Ready = true, Serving = true, Terminating = false },
                TargetRef = new V1ObjectReference { Kind = "Pod", Name = $"{serviceName}-{backend.Name}", NamespaceProperty = Namespace },
            },
        ],
        Ports = [new Discoveryv1EndpointPort { Name = "http", Port = backend.Port, Protocol = "TCP" }],
    };

    private static string KubeConfig(Uri server, string token) => string.Create(CultureInfo.InvariantCulture, $"""
        apiVersion: v1
        kind: Config
        clusters:
        - name: meshdemo
          cluster:
            server: {server.GetLeftPart(UriPartial.Authority)}
        users:
        - name: meshdemo
          user:
            token: {token}
        contexts:
        - name: meshdemo
          context:
            cluster: meshdemo
            user: meshdemo
            namespace: {Namespace}
        current-context: meshdemo
        """);

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A temp folder left behind is harmless.
        }
    }
}
