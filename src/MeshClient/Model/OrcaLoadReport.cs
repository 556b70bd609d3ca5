using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace MeshClient.Model;

/// <summary>
/// The load an endpoint reports of itself in its <c>endpoint-load-metrics</c> response header (ORCA, the xDS Open
/// Request Cost Aggregation: the fields of <c>xds.data.orca.v3.OrcaLoadReport</c>, as vLLM and Envoy send and read them).
/// The value names its form in a prefix, each form the whole report:
/// <list type="bullet">
/// <item><c>TEXT cpu_utilization=0.3, rps_fractional=10, named_metrics.foo=123</c>: a comma-separated list (optional
/// white space around each element, empty elements skipped) of <c>name=value</c> — also <c>name:value</c>, as Envoy's
/// parser reads it — with <c>named_metrics.*</c>, <c>utilization.*</c> and <c>request_cost.*</c> entries (kept by nobody
/// here, so skipped once their key is checked).</item>
/// <item><c>JSON {"cpu_utilization": 0.3, "rps_fractional": 10, "named_metrics": {"foo": 123}}</c>: the proto3 JSON
/// mapping of the message (field names as in the proto or in lowerCamelCase, numbers or numeric strings).</item>
/// <item><c>BIN CgQ…</c>: the message serialized in protobuf and base64-encoded (also the whole value of the legacy
/// <c>endpoint-load-metrics-bin</c> header that gRPC servers send).</item>
/// </list>
/// A report is all or nothing: a malformed element, a value that is not a finite number ≥ 0, or a field named twice
/// refuses the whole report (as Envoy does); unknown field names are skipped (Envoy refuses them), so that a field added
/// to the message later does not make reports unreadable. Parsed from spans without allocating (the header's string is
/// the one System.Net.Http already made); the JSON form goes through <see cref="Utf8JsonReader"/> over a stack buffer.
/// </summary>
/// <param name="CpuUtilization">The <c>cpu_utilization</c> field (a fraction, may exceed 1).</param>
/// <param name="MemUtilization">The <c>mem_utilization</c> field.</param>
/// <param name="ApplicationUtilization">The <c>application_utilization</c> field.</param>
/// <param name="RpsFractional">The <c>rps_fractional</c> field: the requests per second the endpoint serves, all clients together.</param>
/// <param name="Eps">The <c>eps</c> field: the errors per second it serves.</param>
internal readonly record struct OrcaLoadReport(double CpuUtilization, double MemUtilization, double ApplicationUtilization, double RpsFractional, double Eps)
{
    /// <summary>The response header that carries a report.</summary>
    public const string HeaderName = "endpoint-load-metrics";

    /// <summary>The legacy header of the binary form (gRPC), a bare base64 value without prefix.</summary>
    public const string BinaryHeaderName = "endpoint-load-metrics-bin";

    private const int StackLimit = 1024;

    private const int Cpu = 1, Mem = 2, Application = 4, Rps = 8, ErrorsPerSecond = 16, LegacyRps = 32;

    /// <summary>Gets the utilization that weighs the endpoint (gRFC A58): <c>application_utilization</c> when set, else <c>cpu_utilization</c>.</summary>
    public double Utilization => ApplicationUtilization > 0 ? ApplicationUtilization : CpuUtilization;

    /// <summary>
    /// Reads the report among a response's <paramref name="headers"/> (<see cref="HeaderName"/>, else
    /// <see cref="BinaryHeaderName"/>; the first value of either). <see langword="false"/> when there is none, or it is
    /// malformed.
    /// </summary>
    /// <param name="headers">The response headers (or trailers).</param>
    /// <param name="report">The report.</param>
    public static bool TryRead(HttpHeaders headers, out OrcaLoadReport report)
    {
        if (headers.NonValidated.TryGetValues(HeaderName, out var values))
        {
            foreach (var value in values)
            {
                return TryParse(value, out report);
            }
        }
        else if (headers.NonValidated.TryGetValues(BinaryHeaderName, out var binary))
        {
            foreach (var value in binary)
            {
                return TryParseBinary(value.AsSpan().Trim(), out report);
            }
        }

        report = default;
        return false;
    }

    /// <summary>Parses the value of an <see cref="HeaderName"/> header: <c>TEXT …</c>, <c>JSON …</c> or <c>BIN …</c>.</summary>
    /// <param name="value">The header's value.</param>
    /// <param name="report">The report, when the value is well formed.</param>
    public static bool TryParse(ReadOnlySpan<char> value, out OrcaLoadReport report)
    {
        value = value.Trim();
        if (value.StartsWith("TEXT ", StringComparison.Ordinal))
        {
            return TryParseText(value[5..], out report);
        }

        if (value.StartsWith("JSON ", StringComparison.Ordinal))
        {
            return TryParseJson(value[5..], out report);
        }

        if (value.StartsWith("BIN ", StringComparison.Ordinal))
        {
            return TryParseBinary(value[4..].Trim(), out report);
        }

        report = default;
        return false;
    }

    private static bool TryParseText(ReadOnlySpan<char> list, out OrcaLoadReport report)
    {
        report = default;
        var fields = new Fields();
        foreach (var range in list.Split(','))
        {
            var element = list[range].Trim(" \t");
            if (element.IsEmpty)
            {
                continue;
            }

            var separator = element.IndexOfAny('=', ':');
            if (separator <= 0)
            {
                return false; // no value, or no name
            }

            var name = element[..separator].TrimEnd(" \t");
            var text = element[(separator + 1)..].TrimStart(" \t");
            if (text.IsEmpty
                || !double.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out var number)
                || !fields.Set(name, number))
            {
                return false;
            }
        }

        return fields.ToReport(out report);
    }

    private static bool TryParseJson(ReadOnlySpan<char> json, out OrcaLoadReport report)
    {
        report = default;
        var length = Encoding.UTF8.GetMaxByteCount(json.Length);
        byte[]? rented = null;
        Span<byte> buffer = length <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var utf8 = buffer[..Encoding.UTF8.GetBytes(json, buffer)];
            return TryParseJson(utf8, out report);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static bool TryParseJson(ReadOnlySpan<byte> utf8, out OrcaLoadReport report)
    {
        report = default;
        var fields = new Fields();
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var field = JsonField(ref reader);
                reader.Read();
                if (field == 0 || reader.TokenType == JsonTokenType.Null)
                {
                    reader.Skip(); // a map (named_metrics, utilization, request_cost), an unknown field, or null (the default)
                    continue;
                }

                if (!JsonNumber(ref reader, out var number) || !fields.Set(field, number))
                {
                    return false;
                }
            }

            // The object is closed, and nothing follows it.
            return reader.TokenType == JsonTokenType.EndObject && !reader.Read() && fields.ToReport(out report);
        }
        catch (JsonException)
        {
            return false; // malformed JSON: Utf8JsonReader has no Try form
        }
    }

    private static int JsonField(ref Utf8JsonReader reader) =>
        reader.ValueTextEquals("cpu_utilization"u8) || reader.ValueTextEquals("cpuUtilization"u8) ? Cpu
        : reader.ValueTextEquals("mem_utilization"u8) || reader.ValueTextEquals("memUtilization"u8) ? Mem
        : reader.ValueTextEquals("application_utilization"u8) || reader.ValueTextEquals("applicationUtilization"u8) ? Application
        : reader.ValueTextEquals("rps_fractional"u8) || reader.ValueTextEquals("rpsFractional"u8) ? Rps
        : reader.ValueTextEquals("eps"u8) ? ErrorsPerSecond
        : reader.ValueTextEquals("rps"u8) ? LegacyRps
        : 0;

    /// <summary>A proto3 JSON number: a JSON number, or a string holding one.</summary>
    private static bool JsonNumber(ref Utf8JsonReader reader, out double number)
    {
        number = 0;
        return reader.TokenType switch
        {
            JsonTokenType.Number => reader.TryGetDouble(out number),
            JsonTokenType.String when !reader.HasValueSequence && !reader.ValueIsEscaped =>
                double.TryParse(reader.ValueSpan, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out number),
            _ => false,
        };
    }

    /// <summary>
    /// The protobuf form, base64-encoded. Decoded by hand (a dozen lines for five scalar fields) rather than with
    /// Google.Protobuf, which the mesh does not otherwise reference and whose message classes allocate.
    /// </summary>
    private static bool TryParseBinary(ReadOnlySpan<char> base64, out OrcaLoadReport report)
    {
        report = default;
        var length = (base64.Length / 4 * 3) + 3;
        byte[]? rented = null;
        Span<byte> buffer = length <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            return Convert.TryFromBase64Chars(base64, buffer, out var written) && TryParseProtobuf(buffer[..written], out report);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static bool TryParseProtobuf(ReadOnlySpan<byte> message, out OrcaLoadReport report)
    {
        report = default;
        var fields = new Fields();
        while (!message.IsEmpty)
        {
            if (!TryReadVarint(ref message, out var key))
            {
                return false;
            }

            var number = key >> 3;
            switch ((int)(key & 7))
            {
                case 0: // varint: rps (3), the deprecated integer rate
                    if (!TryReadVarint(ref message, out var integer) || (number == 3 && !fields.Set(LegacyRps, integer)))
                    {
                        return false;
                    }

                    break;
                case 1: // fixed64: the doubles
                    if (message.Length < 8)
                    {
                        return false;
                    }

                    var value = BinaryPrimitives.ReadDoubleLittleEndian(message);
                    message = message[8..];
                    var field = number switch { 1 => Cpu, 2 => Mem, 6 => Rps, 7 => ErrorsPerSecond, 9 => Application, _ => 0 };
                    if (field != 0 && !fields.Set(field, value))
                    {
                        return false;
                    }

                    break;
                case 2: // length-delimited: the maps (4, 5, 8), skipped
                    if (!TryReadVarint(ref message, out var size) || size > (ulong)message.Length)
                    {
                        return false;
                    }

                    message = message[(int)size..];
                    break;
                case 5: // fixed32: no such field, skipped
                    if (message.Length < 4)
                    {
                        return false;
                    }

                    message = message[4..];
                    break;
                default:
                    return false;
            }
        }

        return fields.ToReport(out report);
    }

    private static bool TryReadVarint(ref ReadOnlySpan<byte> data, out ulong value)
    {
        value = 0;
        for (var i = 0; i < 10 && i < data.Length; i++)
        {
            value |= (ulong)(data[i] & 0x7F) << (7 * i);
            if (data[i] < 0x80)
            {
                data = data[(i + 1)..];
                return true;
            }
        }

        return false;
    }

    /// <summary>The fields read so far, each at most once.</summary>
    private struct Fields
    {
        private int _seen;
        private double _cpu, _mem, _application, _rps, _eps, _legacyRps;

        /// <summary>Sets a TEXT element by its name; map entries are checked and skipped, unknown names skipped.</summary>
        public bool Set(ReadOnlySpan<char> name, double value)
        {
            if (name.StartsWith("named_metrics.", StringComparison.Ordinal)
                || name.StartsWith("utilization.", StringComparison.Ordinal)
                || name.StartsWith("request_cost.", StringComparison.Ordinal))
            {
                return name[(name.IndexOf('.') + 1)..].Length > 0 && double.IsFinite(value); // a map entry needs its key
            }

            var field = name switch
            {
                "cpu_utilization" => Cpu,
                "mem_utilization" => Mem,
                "application_utilization" => Application,
                "rps_fractional" => Rps,
                "eps" => ErrorsPerSecond,
                "rps" => LegacyRps,
                _ => 0,
            };
            return field == 0 ? double.IsFinite(value) : Set(field, value);
        }

        public bool Set(int field, double value)
        {
            if ((_seen & field) != 0 || !double.IsFinite(value) || value < 0)
            {
                return false; // named twice, or not a finite number ≥ 0 (the message's own rules)
            }

            _seen |= field;
            switch (field)
            {
                case Cpu: _cpu = value; break;
                case Mem: _mem = value; break;
                case Application: _application = value; break;
                case Rps: _rps = value; break;
                case ErrorsPerSecond: _eps = value; break;
                default: _legacyRps = value; break;
            }

            return true;
        }

        public readonly bool ToReport(out OrcaLoadReport report)
        {
            // The deprecated integer rps stands in for rps_fractional when only it was sent.
            report = new OrcaLoadReport(_cpu, _mem, _application, _rps > 0 ? _rps : _legacyRps, _eps);
            return true;
        }
    }
}
