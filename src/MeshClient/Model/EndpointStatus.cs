namespace MeshClient.Model;

/// <summary>Whether an endpoint takes traffic.</summary>
internal enum EndpointStatus
{
    /// <summary>Takes traffic.</summary>
    Healthy,

    /// <summary>Ejected by outlier detection: takes no traffic unless the service is in panic mode.</summary>
    Ejected,

    /// <summary>Its ejection ended: takes one probe request; success readmits it, failure ejects it again.</summary>
    Probing,
}
