using MeshClient;
using MeshClient.Balancing;
using MeshClient.Configuration;
using MeshClient.Discovery;
using MeshClient.Handlers;
using MeshClient.Model;
using MeshClient.Resilience;
using MeshClient.Routing;
using MeshClient.Security;
using MeshClient.Status;
using MeshClient.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.ServiceDiscovery;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Registers the mesh: <c>services.AddMesh()</c> makes every <see cref="System.Net.Http.IHttpClientFactory"/> client
/// discover, balance, eject, retry and trace through the mesh.
/// </summary>
public static class MeshServiceCollectionExtensions
{
    /// <summary>The configuration section the mesh is bound from by default.</summary>
    public const string DefaultSectionName = MeshBuilder.DefaultSectionName;

    /// <summary>
    /// Adds the mesh, bound from the <c>Mesh</c> section of the application's <see cref="IConfiguration"/> (reloadable).
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <returns>A builder to add optional features such as Consul.</returns>
    public static IMeshBuilder AddMesh(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        return AddMeshCore(services, DefaultSectionName, section: null);
    }

    /// <summary>
    /// Adds the mesh, bound from the <c>Mesh</c> configuration section when there is one, then configured by
    /// <paramref name="configure"/>.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures the options after configuration binding.</param>
    /// <returns>A builder to add optional features such as Consul.</returns>
    public static IMeshBuilder AddMesh(this IServiceCollection services, Action<MeshOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var builder = AddMeshCore(services, DefaultSectionName, section: null);
        services.Configure(configure);
        return builder;
    }

    /// <summary>Adds the mesh, bound from <paramref name="section"/> (reloadable).</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="section">The configuration section holding the mesh options.</param>
    /// <returns>A builder to add optional features such as Consul.</returns>
    public static IMeshBuilder AddMesh(this IServiceCollection services, IConfigurationSection section)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        return AddMeshCore(services, section.Path, section);
    }

    private static MeshBuilder AddMeshCore(IServiceCollection services, string path, IConfigurationSection? section)
    {
        var existing = services.FirstOrDefault(d => d.ServiceType == typeof(MeshMarker))?.ImplementationInstance as MeshMarker;
        if (existing is not null)
        {
            return new MeshBuilder(services, existing.Path);
        }

        services.AddSingleton(new MeshMarker(path));
        services.AddHttpClient();
        services.AddServiceDiscoveryCore();

        // The mesh's provider goes first, ahead of the standard configuration provider ("first provider with
        // endpoints wins"), even when AddServiceDiscovery() was called before AddMesh().
        var firstProvider = services.IndexOf(services.FirstOrDefault(d => d.ServiceType == typeof(IServiceEndpointProviderFactory))!);
        var descriptor = ServiceDescriptor.Singleton<IServiceEndpointProviderFactory, MeshConfigurationEndpointProviderFactory>();
        if (firstProvider < 0)
        {
            services.Add(descriptor);
        }
        else
        {
            services.Insert(firstProvider, descriptor);
        }

        // The standard configuration provider needs an IConfiguration; a bare service collection gets an empty one
        // (a host's own registration, earlier or later, wins).
        services.TryAddSingleton<IConfiguration>(_ => new ConfigurationBuilder().Build());
        services.AddConfigurationServiceEndpointProvider();

        var options = services.AddOptions<MeshOptions>();
        if (section is not null)
        {
            options.Configure<IServiceProvider>((o, sp) => Bind(section, o, sp));
            services.AddSingleton<IOptionsChangeTokenSource<MeshOptions>>(new ConfigurationChangeTokenSource<MeshOptions>(Options.Options.DefaultName, section));
        }
        else
        {
            options.Configure<IServiceProvider>((o, sp) =>
            {
                if (sp.GetService<IConfiguration>() is { } configuration)
                {
                    Bind(configuration.GetSection(path), o, sp);
                }
            });
            services.AddSingleton<IOptionsChangeTokenSource<MeshOptions>>(sp =>
                new ConfigurationChangeTokenSource<MeshOptions>(
                    Options.Options.DefaultName,
                    (IConfiguration?)sp.GetService<IConfiguration>()?.GetSection(path) ?? new ConfigurationBuilder().Build()));
        }

        // Mesh:Zone, else the MESH_ZONE environment variable (after every Configure, so code that sets it wins too).
        options.PostConfigure(static o => o.ApplyZoneFromEnvironment(Environment.GetEnvironmentVariable));
        options.ValidateOnStart();
        services.AddSingleton(new MeshConfigurationPath(path));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MeshOptions>, MeshOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MeshOptions>, MeshClient.Security.MeshSecurityOptionsValidator>());
        services.AddOptions<MeshClientSelection>();

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(Randomizer.Shared);
        services.TryAddSingleton<MeshOptionsChangeNotifier>();
        services.TryAddSingleton<ServiceTableRegistry>();
        services.TryAddSingleton<MeshRouter>();
        services.TryAddSingleton<MeshClient.Security.MeshTls>();
        services.TryAddSingleton<MeshClient.Resilience.MeshConnectTimeout>();
        services.TryAddSingleton<IMeshStatus, MeshStatus>();
        services.AddMetrics();
        services.TryAddSingleton<MeshInstrumentation>();
        services.TryAddSingleton<ResilienceRegistry>();
        services.TryAddSingleton<MeshClient.Hedging.HedgingRegistry>();
        services.TryAddSingleton<IEndpointHealthObserver, OutlierDetector>();

        // An application that enables OpenTelemetry records the mesh without naming it; nothing happens otherwise.
        services.ConfigureOpenTelemetryTracerProvider(b => b.AddMeshInstrumentation());
        services.ConfigureOpenTelemetryMeterProvider(b => b.AddMeshInstrumentation());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHttpMessageHandlerBuilderFilter, MeshHttpMessageHandlerBuilderFilter>());
        return new MeshBuilder(services, path);
    }

    /// <summary>
    /// Binds, turning a value the binder cannot convert into a validation failure naming its key (instead of an
    /// <see cref="InvalidOperationException"/> from deep inside <see cref="IOptionsMonitor{TOptions}"/>), and every key
    /// that no option reads (a typo) into one naming its full path.
    /// </summary>
    private static void Bind(IConfiguration section, MeshOptions options, IServiceProvider services)
    {
        try
        {
            section.Bind(options);
        }
        catch (InvalidOperationException ex)
        {
            options.BindingErrors.Add(ex.InnerException is { } inner ? $"{ex.Message} {inner.Message}" : ex.Message);
        }

        CheckKeys(section, options, services.GetServices<MeshConfigurationSubsection>());
    }

    /// <summary>
    /// Refuses the keys of the mesh's section that nothing reads. A section of an optional builder that was not added
    /// (<c>Mesh:Consul</c> without <c>AddConsul()</c>) is not read either, but it is a whole section, not a typo: it is
    /// accepted and reported by warning 14.
    /// </summary>
    internal static void CheckKeys(IConfiguration section, MeshOptions options, IEnumerable<MeshConfigurationSubsection> subsections)
    {
        var added = subsections.ToList();
        var schema = MeshConfigurationSchema.Mesh.With(added.Select(s => (s.Name, s.Schema)));
        var unknown = new List<string>();
        foreach (var child in section.GetChildren())
        {
            if (schema.Property(child.Key) is { } property)
            {
                property.FindUnknownKeys(child, unknown);
            }
            else if (MeshConfigurationSchema.OptionalSections.FirstOrDefault(name => string.Equals(name, child.Key, StringComparison.OrdinalIgnoreCase)) is { } optional)
            {
                options.IgnoredSections.Add((child.Path, $"Add{optional}()"));
            }
            else
            {
                unknown.Add(schema.Describe(child));
            }
        }

        options.BindingErrors.AddRange(unknown);
    }

    private sealed class MeshMarker(string path)
    {
        public string Path { get; } = path;
    }
}
