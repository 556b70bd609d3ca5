using System.Net;
using MeshClient.Balancing;
using MeshClient.Model;

namespace MeshClient.Handlers;

/// <summary>
/// The body of a gRPC response whose status is still to come (response headers without <c>grpc-status</c>: messages,
/// then the trailers). It wraps the transport's content and watches its reading: when the body is read to its end, the
/// trailers have arrived (SocketsHttpHandler fills <see cref="HttpResponseMessage.TrailingHeaders"/> then), and their
/// <c>grpc-status</c> is what the call came to. That ends the attempt's lease (<see cref="EndpointLease.CompleteStream"/>:
/// the status counts for the endpoint, the open stream is released) and then tells the call's telemetry
/// (<see cref="WhenEnded"/>). A body the caller lets go of before its end (disposed: a stream cancelled) ends the lease as
/// cancelled, saying nothing of the endpoint; a read that fails (the connection lost mid-stream) as a failure.
/// </summary>
/// <remarks>
/// The lease is completed exactly once, whichever comes first; the body keeps the attempt counted on its endpoint as an
/// open stream until then (<see cref="EndpointState.OpenStreams"/>). Grpc.Net.Client reads every response to its
/// trailers or disposes it (its call does, when it completes or is disposed), so every lease ends. A retry cannot
/// happen once this body is handed on: the answer has started.
/// </remarks>
internal sealed class GrpcResponseBody : HttpContent
{
    private readonly HttpContent _inner;
    private readonly HttpResponseMessage _response;
    private readonly EndpointLease _lease;
    private readonly long _answeredAt;
    private Action<GrpcResponseBody>? _whenEnded;
    private bool _ended;

    private GrpcResponseBody(HttpContent inner, HttpResponseMessage response, EndpointLease lease, long answeredAt)
    {
        _inner = inner;
        _response = response;
        _lease = lease;
        _answeredAt = answeredAt;
        foreach (var header in inner.Headers.NonValidated)
        {
            Headers.TryAddWithoutValidation(header.Key, header.Value);
        }
    }

    /// <summary>Gets the gRPC status the trailers carried, or <see cref="GrpcProtocol.NoStatus"/> (not ended, or ended without one).</summary>
    public int Status { get; private set; } = GrpcProtocol.NoStatus;

    /// <summary>Gets the exception a read of the body failed with, if any.</summary>
    public Exception? Error { get; private set; }

    /// <summary>
    /// Takes over the lease of an attempt whose gRPC answer has a body still to come (<see cref="EndpointLease.Answered"/>
    /// now) and puts this body on the response in place of the transport's; the lease ends with the body.
    /// </summary>
    public static void Watch(HttpResponseMessage response, EndpointLease lease)
    {
        var answeredAt = lease.Answered();
        response.Content = new GrpcResponseBody(response.Content, response, lease, answeredAt);
    }

    /// <summary>
    /// Runs <paramref name="callback"/> once the body has ended and its lease completed (at once if it already has):
    /// the call handler records the call's span and metrics then, with <see cref="Status"/>.
    /// </summary>
    public void WhenEnded(Action<GrpcResponseBody> callback)
    {
        lock (this)
        {
            if (!_ended)
            {
                _whenEnded = callback;
                return;
            }
        }

        callback(this);
    }

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        await SerializeToStreamAsync(stream, context, CancellationToken.None).ConfigureAwait(false);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        var body = await CreateContentReadStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (body.ConfigureAwait(false))
        {
            await body.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
        }
    }

    protected override Task<Stream> CreateContentReadStreamAsync() => CreateContentReadStreamAsync(CancellationToken.None);

    protected override async Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) =>
        new WatchedStream(await _inner.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), this);

    protected override Stream CreateContentReadStream(CancellationToken cancellationToken) =>
        new WatchedStream(_inner.ReadAsStream(cancellationToken), this);

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            // Let go of before its end: says nothing of the endpoint (a no-op after the end). First, so that a read the
            // disposal breaks is not taken for the endpoint's failure.
            End(AttemptOutcome.Cancelled, TimeSpan.Zero);
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    private void OnEndOfBody()
    {
        Status = GrpcProtocol.StatusOf(_response.TrailingHeaders);
        _lease.ReadLoadReport(_response.TrailingHeaders); // gRPC servers send their per-call load report in the trailers
        End(OutcomeClassifier.OfGrpcStatus(_response.TrailingHeaders, out var retryAfter), retryAfter);
    }

    private void OnReadFailed(Exception exception)
    {
        // Cancelled or disposed by the caller: nothing said of the endpoint; anything else (a connection lost or the
        // stream reset mid-body) is the endpoint's failure.
        Error = exception;
        End(exception is OperationCanceledException or ObjectDisposedException ? AttemptOutcome.Cancelled : AttemptOutcome.Failure, TimeSpan.Zero);
    }

    private void End(AttemptOutcome outcome, TimeSpan retryAfter)
    {
        Action<GrpcResponseBody>? whenEnded;
        lock (this)
        {
            if (_ended)
            {
                return;
            }

            _ended = true;
            whenEnded = _whenEnded;
            _whenEnded = null;
        }

        _lease.CompleteStream(outcome, retryAfter, _answeredAt);
        whenEnded?.Invoke(this);
    }

    /// <summary>The transport's response stream, read through: its end (a read of 0 bytes) or its failure ends the body.</summary>
    private sealed class WatchedStream(Stream inner, GrpcResponseBody body) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int read;
            try
            {
                read = inner.Read(buffer);
            }
            catch (Exception ex)
            {
                body.OnReadFailed(ex);
                throw;
            }

            return Ended(read, buffer.Length);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int read;
            try
            {
                read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                body.OnReadFailed(ex);
                throw;
            }

            return Ended(read, buffer.Length);
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync().ConfigureAwait(false);
            await base.DisposeAsync().ConfigureAwait(false);
        }

        private int Ended(int read, int asked)
        {
            if (read == 0 && asked > 0)
            {
                body.OnEndOfBody();
            }

            return read;
        }
    }
}
