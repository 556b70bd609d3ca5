namespace MeshClient.Configuration;

/// <summary>
/// One static endpoint of a service, bound from <c>Mesh:Services:{name}:Endpoints:{i}</c>.
/// </summary>
public sealed class MeshEndpointOptions
{
    /// <summary>The smallest valid <see cref="Weight"/>.</summary>
    public const int MinWeight = 1;

    /// <summary>The largest valid <see cref="Weight"/>.</summary>
    public const int MaxWeight = 65535;

    /// <summary>
    /// Gets or sets the absolute <c>http</c> or <c>https</c> URI of the endpoint, for example
    /// <c>http://10.0.0.7:8080</c>. A path, if any, becomes the path base of every request sent there.
    /// </summary>
    public string? Address { get; set; }

    /// <summary>
    /// Gets or sets the relative weight of the endpoint, from 1 to 65535. Default: 1.
    /// Under equal load, an endpoint receives a share of traffic proportional to its weight.
    /// </summary>
    public int Weight { get; set; } = 1;

    /// <summary>Gets or sets the zone (availability zone, rack) of the endpoint, if known.</summary>
    public string? Zone { get; set; }

    /// <summary>
    /// Gets or sets the host name sent in the <c>Host</c> header and used for TLS (SNI and certificate
    /// validation) when the address is an IP literal. Optional.
    /// </summary>
    public string? HostName { get; set; }
}
