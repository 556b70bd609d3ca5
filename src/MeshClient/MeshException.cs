namespace MeshClient;

/// <summary>
/// The base class of the errors raised by the mesh itself (as opposed to errors of the called service).
/// </summary>
public abstract class MeshException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="MeshException"/> class.</summary>
    /// <param name="serviceName">The service the request was addressed to.</param>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause, if any.</param>
    protected MeshException(string serviceName, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        ServiceName = serviceName;
    }

    /// <summary>Gets the name of the service the request was addressed to.</summary>
    public string ServiceName { get; }
}
