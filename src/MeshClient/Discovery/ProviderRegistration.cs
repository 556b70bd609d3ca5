using System.Diagnostics.CodeAnalysis;
using MeshClient.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.ServiceDiscovery;

namespace MeshClient.Discovery;

/// <summary>
/// What every optional discovery provider (<c>AddConsul()</c>, <c>AddKubernetes()</c>) registers the same way: its
/// options bound from a subsection of the mesh's (reloadable, validated at start, a value the binder cannot convert
/// reported naming its key, unknown keys refused with the mesh's), the last valid options holder, and its endpoint
/// provider factory in the right place among the providers.
/// </summary>
internal static class ProviderRegistration
{
    /// <summary>
    /// Binds <typeparamref name="TOptions"/> from <c>{mesh section}:{name}</c> and registers
    /// <see cref="LastValidOptions{TOptions}"/> for it; returns the section's path.
    /// </summary>
    /// <typeparam name="TOptions">The provider's options.</typeparam>
    /// <param name="builder">The mesh builder.</param>
    /// <param name="name">The subsection (<c>Consul</c>).</param>
    /// <param name="schema">The keys the subsection may hold.</param>
    /// <param name="bind">Binds the section to the options (a call with the concrete type, which the binder's source generator needs).</param>
    /// <param name="bindingErrors">The list of the options that collects binding errors.</param>
    public static string AddOptions<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)] TOptions>(
        IMeshBuilder builder, string name, ConfigurationSchema schema, Action<IConfiguration, TOptions> bind, Func<TOptions, List<string>> bindingErrors)
        where TOptions : class
    {
        var services = builder.Services;
        var path = MeshBuilder.SectionOf(builder) + ":" + name;
        var options = services.AddOptions<TOptions>();
        options.Configure<IServiceProvider>((o, sp) =>
        {
            try
            {
                if (sp.GetService<IConfiguration>() is { } configuration)
                {
                    bind(configuration.GetSection(path), o);
                }
            }
            catch (InvalidOperationException ex)
            {
                // A value the binder cannot convert ("Wait": "forever") becomes a validation failure naming its key.
                bindingErrors(o).Add(ex.InnerException is { } inner ? $"{ex.Message} {inner.Message}" : ex.Message);
            }
        });
        services.AddSingleton<IOptionsChangeTokenSource<TOptions>>(sp =>
            new ConfigurationChangeTokenSource<TOptions>(
                Options.DefaultName,
                (IConfiguration?)sp.GetService<IConfiguration>()?.GetSection(path) ?? new ConfigurationBuilder().Build()));
        options.ValidateOnStart();

        // The subsection's keys are checked with the mesh's: a typo there is refused at start-up and on reload too.
        services.AddSingleton(new MeshConfigurationSubsection(name, schema));
        services.TryAddSingleton(sp => new LastValidOptions<TOptions>(
            sp.GetRequiredService<IOptionsFactory<TOptions>>(),
            sp.GetServices<IOptionsChangeTokenSource<TOptions>>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger<LastValidOptions<TOptions>>(),
            path));
        return path;
    }

    /// <summary>
    /// Adds a provider's endpoint provider factory after the mesh's configuration provider and before the standard
    /// configuration provider ("the first provider with endpoints wins": <c>Mesh:Services</c> goes first).
    /// </summary>
    /// <typeparam name="TFactory">The provider's factory.</typeparam>
    /// <param name="services">The service collection.</param>
    public static void AddProviderFactory<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TFactory>(IServiceCollection services)
        where TFactory : class, IServiceEndpointProviderFactory
    {
        var factory = ServiceDescriptor.Singleton<IServiceEndpointProviderFactory, TFactory>();
        var meshProvider = services.FirstOrDefault(d => d.ServiceType == typeof(IServiceEndpointProviderFactory) && d.ImplementationType == typeof(MeshConfigurationEndpointProviderFactory));
        var standardProvider = services.FirstOrDefault(d => d.ServiceType == typeof(IServiceEndpointProviderFactory) && d.ImplementationType?.Name == "ConfigurationServiceEndpointProviderFactory");
        if (meshProvider is not null)
        {
            services.Insert(services.IndexOf(meshProvider) + 1, factory);
        }
        else if (standardProvider is not null)
        {
            services.Insert(services.IndexOf(standardProvider), factory);
        }
        else
        {
            services.Add(factory);
        }
    }
}
