using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Security;
using Microsoft.Extensions.Logging;

namespace MeshClient.Consul;

/// <summary>
/// The TLS of the Consul client (<c>Mesh:Consul:CaCertificateFile</c>, <c>ClientCertificateFile</c>,
/// <c>ClientKeyFile</c>), rotated as <c>Mesh:Tls</c> files are: while a file is configured, one timer of the injected
/// <see cref="TimeProvider"/> reads the files again every <c>Mesh:Tls:ReloadInterval</c> (1 min by default) through
/// <see cref="TlsFiles"/>, which switches to new contents only when they parse and keeps the previous ones (with one
/// warning) when a rotation is caught half-written. A connection to Consul takes the trust current when it opens:
/// new connections use rotated certificates, open ones keep theirs. A reload of the Consul options that names other
/// files takes effect for the next connection.
/// </summary>
internal sealed class ConsulTls : IDisposable
{
    private readonly LastValidOptions<ConsulOptions> _options;
    private readonly MeshOptionsChangeNotifier _mesh;
    private readonly TimeProvider _time;
    private readonly string _key;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private volatile State? _state;
    private readonly TlsPollTimer _poller;
    private bool _disposed;

    public ConsulTls(LastValidOptions<ConsulOptions> options, MeshOptionsChangeNotifier mesh, TimeProvider time, ConsulConfigurationPath path, ILogger<ConsulTls> logger)
    {
        _options = options;
        _mesh = mesh;
        _time = time;
        _key = path.Path;
        _logger = logger;
        _poller = new TlsPollTimer(time);
    }

    /// <summary>
    /// Gets the trust of a new connection to Consul: <see langword="null"/> when no TLS file is configured (the
    /// platform's validation, no client certificate), <see cref="TlsTrust.RejectAll"/> while the files have never been
    /// readable.
    /// </summary>
    public TlsTrust? Current
    {
        get
        {
            var state = GetState();
            if (state.Files is not { } files)
            {
                return null;
            }

            var material = files.Current;
            var built = state.Built;
            if (built is null || !ReferenceEquals(built.Material, material))
            {
                built = new Built(material, ReferenceEquals(material, TlsMaterial.Unreadable)
                    ? TlsTrust.RejectAll
                    : new TlsTrust(material.Authorities, trustSystem: false, serverName: null, material.ClientCertificate));
                state.Built = built;
            }

            return built.Trust;
        }
    }

    /// <summary>Gets the polling interval in use, or <see langword="null"/> when nothing is polled (tests).</summary>
    internal TimeSpan? PollingInterval
    {
        get
        {
            lock (_lock)
            {
                return _poller.Interval;
            }
        }
    }

    private State GetState()
    {
        var current = _options.Current;
        var interval = _mesh.Current.Tls.ReloadInterval ?? MeshTlsOptions.DefaultReloadInterval;
        var state = _state;
        if (state is not null && ReferenceEquals(state.Options, current) && state.Interval == interval)
        {
            return state;
        }

        lock (_lock)
        {
            state = _state;
            if (state is null || !ReferenceEquals(state.Options, current) || state.Interval != interval)
            {
                state = Build(current, interval, state);
                _state = state;
            }

            return state;
        }
    }

    /// <summary>The files of new options (under the lock); the same files keep their watcher, read again now.</summary>
    private State Build(ConsulOptions options, TimeSpan interval, State? previous)
    {
        var certificateFile = NullIfEmpty(options.ClientCertificateFile);
        var set = new TlsFileSet(NullIfEmpty(options.CaCertificateFile), certificateFile, certificateFile is null ? null : NullIfEmpty(options.ClientKeyFile));
        TlsFiles? files = null;
        if (set.CaCertificateFile is not null || set.ClientCertificateFile is not null)
        {
            if (previous?.Files is { } watched && watched.Files == set)
            {
                watched.Refresh();
                files = watched;
            }
            else
            {
                files = new TlsFiles(set, _key, _logger);
            }
        }

        _poller.Schedule(files is not null, interval, Poll);
        return new State(options, interval, files);
    }

    /// <summary>One timer tick: reads the files again (never throws).</summary>
    private void Poll()
    {
        if (!Volatile.Read(ref _disposed))
        {
            GetState().Files?.Refresh();
        }
    }

    /// <summary>Stops polling the files (the service provider is being disposed).</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _poller.Dispose();
        }
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private sealed class State(ConsulOptions options, TimeSpan interval, TlsFiles? files)
    {
        public ConsulOptions Options { get; } = options;

        public TimeSpan Interval { get; } = interval;

        public TlsFiles? Files { get; } = files;

        private volatile Built? _built;

        /// <summary>Gets or sets the trust built from one version of the files (rebuilt once per rotation).</summary>
        public Built? Built
        {
            get => _built;
            set => _built = value;
        }
    }

    /// <summary>The trust built from one version of the files.</summary>
    private sealed record Built(TlsMaterial Material, TlsTrust Trust);
}
