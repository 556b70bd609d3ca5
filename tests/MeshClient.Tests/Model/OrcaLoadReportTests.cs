using System.Buffers.Binary;
using System.Net.Http.Headers;
using MeshClient.Model;

namespace MeshClient.Tests.Model;

/// <summary>
/// The ORCA <c>endpoint-load-metrics</c> header in its three forms (TEXT, JSON, BIN), as vLLM and Envoy write it: what is
/// read, what is refused whole, and that reading it allocates nothing.
/// </summary>
public sealed class OrcaLoadReportTests
{
    [Theory]
    [InlineData("TEXT cpu_utilization=0.3, rps_fractional=10, named_metrics.foo=123")] // the ORCA spec's and vLLM's form
    [InlineData("TEXT cpu_utilization:0.3,rps_fractional:10,named_metrics.foo:123")] // Envoy's parser's separator
    [InlineData("TEXT  cpu_utilization = 0.3 ,\trps_fractional=1e1,, named_metrics.foo=123 ")] // white space, an empty element
    [InlineData("JSON {\"cpu_utilization\": 0.3, \"rps_fractional\": 10, \"named_metrics\": {\"foo\": 123}}")]
    [InlineData("JSON {\"cpuUtilization\": \"0.3\", \"rpsFractional\": 10, \"namedMetrics\": {\"foo\": 123}}")] // proto3 JSON: camelCase, numbers as strings
    [InlineData("JSON {\"cpu_utilization\":0.3,\"rps_fractional\":10,\"request_cost\":{\"a\":1},\"utilization\":{\"b\":0.5},\"mem_utilization\":null}")]
    [InlineData("  TEXT cpu_utilization=0.3, rps_fractional=10  ")]
    public void AReport_IsRead_InEveryForm(string value)
    {
        Assert.True(OrcaLoadReport.TryParse(value, out var report));
        Assert.Equal(0.3, report.CpuUtilization);
        Assert.Equal(10, report.RpsFractional);
        Assert.Equal(0.3, report.Utilization);
        Assert.Equal(0, report.Eps);
    }

    [Fact]
    public void EveryField_IsRead()
    {
        Assert.True(OrcaLoadReport.TryParse("TEXT cpu_utilization=0.7,application_utilization=0.8,mem_utilization=0.9,rps_fractional=1000,eps=2,named_metrics.foo=123,named_metrics.bar=0.2,utilization.total=0.5", out var text));
        Assert.Equal(new OrcaLoadReport(0.7, 0.9, 0.8, 1000, 2), text);
        Assert.Equal(0.8, text.Utilization); // application_utilization wins when set (gRFC A58)

        Assert.True(OrcaLoadReport.TryParse("JSON {\"cpu_utilization\": 0.7, \"application_utilization\": 0.8, \"mem_utilization\": 0.9, \"rps_fractional\": 1000, \"eps\": 2, \"named_metrics\": {\"foo\": 123,\"bar\": 0.2}}", out var json));
        Assert.Equal(text, json);

        Assert.True(OrcaLoadReport.TryParse("BIN " + Binary(text), out var binary));
        Assert.Equal(text, binary);
    }

    [Fact]
    public void ThePartsNotSent_AreZero_AndTheLegacyIntegerRateStandsIn()
    {
        Assert.True(OrcaLoadReport.TryParse("TEXT cpu_utilization=0.5", out var cpuOnly));
        Assert.Equal(new OrcaLoadReport(0.5, 0, 0, 0, 0), cpuOnly);
        Assert.True(OrcaLoadReport.TryParse("JSON {}", out var empty));
        Assert.Equal(default, empty);
        Assert.True(OrcaLoadReport.TryParse("JSON {\"cpu_utilization\": 0.5, \"rps\": \"40\"}", out var legacy));
        Assert.Equal(40, legacy.RpsFractional);
        Assert.True(OrcaLoadReport.TryParse("TEXT cpu_utilization=0.5, future_field=3", out var unknown)); // skipped, not refused
        Assert.Equal(0.5, unknown.CpuUtilization);
    }

    [Theory]
    [InlineData("")]
    [InlineData("cpu_utilization=0.3")] // no form
    [InlineData("text cpu_utilization=0.3")] // the prefix is upper case
    [InlineData("XML <cpu>0.3</cpu>")]
    [InlineData("TEXT not-a-list-of-key-value-pairs")]
    [InlineData("TEXT cpu_utilization=")]
    [InlineData("TEXT =0.3")]
    [InlineData("TEXT cpu_utilization=\"0.7\"")]
    [InlineData("TEXT cpu_utilization=0.3x")]
    [InlineData("TEXT cpu_utilization=NaN")]
    [InlineData("TEXT cpu_utilization=Infinity")]
    [InlineData("TEXT cpu_utilization=-0.1")]
    [InlineData("TEXT cpu_utilization=0.7,cpu_utilization=0.8")] // named twice
    [InlineData("TEXT named_metrics.=123")] // a map entry without its key
    [InlineData("TEXT rps_fractional=10, cpu_utilization=0.3, eps")] // one bad element refuses the report
    [InlineData("JSON not-a-valid-json-string")]
    [InlineData("JSON {\"cpu_utilization\": 0.3")]
    [InlineData("JSON {\"cpu_utilization\": 0.3} trailing")]
    [InlineData("JSON {\"cpu_utilization\": true}")]
    [InlineData("JSON {\"cpu_utilization\": \"NaN\"}")]
    [InlineData("JSON {\"cpu_utilization\": -1}")]
    [InlineData("JSON {\"cpu_utilization\": 0.3, \"cpuUtilization\": 0.4}")] // the same field twice
    [InlineData("JSON [0.3]")]
    [InlineData("BIN not-base64!")]
    [InlineData("BIN CQ==")] // a fixed64 field cut short
    public void AMalformedReport_IsRefusedWhole(string value) =>
        Assert.False(OrcaLoadReport.TryParse(value, out _));

    [Fact]
    public void TheHeader_IsFoundAmongTheResponseHeaders_OrItsLegacyBinaryForm_OrNot()
    {
        using var response = new HttpResponseMessage();
        Assert.False(OrcaLoadReport.TryRead(response.Headers, out _));

        response.Headers.TryAddWithoutValidation("endpoint-load-metrics", "TEXT cpu_utilization=0.25, rps_fractional=8");
        Assert.True(OrcaLoadReport.TryRead(response.Headers, out var report));
        Assert.Equal(new OrcaLoadReport(0.25, 0, 0, 8, 0), report);

        using var grpc = new HttpResponseMessage();
        grpc.TrailingHeaders.TryAddWithoutValidation("endpoint-load-metrics-bin", Binary(new OrcaLoadReport(0.5, 0, 0, 20, 1)));
        Assert.True(OrcaLoadReport.TryRead(grpc.TrailingHeaders, out var trailers));
        Assert.Equal(new OrcaLoadReport(0.5, 0, 0, 20, 1), trailers);

        using var malformed = new HttpResponseMessage();
        malformed.Headers.TryAddWithoutValidation("endpoint-load-metrics", "TEXT cpu_utilization");
        Assert.False(OrcaLoadReport.TryRead(malformed.Headers, out _));
    }

    [Theory]
    [InlineData("TEXT application_utilization=0.4, rps_fractional=100, eps=0.5, named_metrics.kv_cache=0.7")]
    [InlineData("JSON {\"application_utilization\": 0.4, \"rps_fractional\": 100, \"eps\": 0.5, \"named_metrics\": {\"kv_cache\": 0.7}}")]
    [InlineData("BIN CZqZmZmZmdk/MQAAAAAAAFlA")] // cpu_utilization 0.4, rps_fractional 100
    public void Reading_AllocatesNothing(string value)
    {
        using var response = new HttpResponseMessage();
        response.Headers.TryAddWithoutValidation("endpoint-load-metrics", value);
        Assert.True(OrcaLoadReport.TryRead(response.Headers, out _)); // warm up (and the header's parsing by HttpHeaders)

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            OrcaLoadReport.TryRead(response.Headers, out _);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void TheEndpointsRecord_KeepsUsableReports_AndTheTimeTheyArrived()
    {
        var record = new EndpointLoadReport();
        Assert.False(record.TryRead(out _, out _, out _, out _));
        Assert.False(record.Record(new OrcaLoadReport(0.5, 0, 0, 0, 0), 100)); // no rate: nothing a weight can use (A58)
        Assert.False(record.Record(new OrcaLoadReport(0, 0, 0, 10, 0), 100)); // no utilization
        Assert.Equal(EndpointLoadReport.None, record.NonEmptySince);

        Assert.True(record.Record(new OrcaLoadReport(0.5, 0, 0.25, 10, 1), 200));
        Assert.True(record.TryRead(out var utilization, out var qps, out var eps, out var receivedAt));
        Assert.Equal((0.25, 10.0, 1.0, 200L), (utilization, qps, eps, receivedAt));
        Assert.Equal(200, record.NonEmptySince);

        Assert.True(record.Record(new OrcaLoadReport(0.6, 0, 0, 12, 0), 300));
        Assert.Equal(200, record.NonEmptySince); // reporting without a gap since 200
        record.RestartBlackout(200);
        Assert.Equal(EndpointLoadReport.None, record.NonEmptySince);
        Assert.True(record.Record(new OrcaLoadReport(0.6, 0, 0, 12, 0), 400));
        Assert.Equal(400, record.NonEmptySince);
    }

    /// <summary>The report serialized as protobuf (the doubles as fixed64 fields) and base64-encoded.</summary>
    private static string Binary(OrcaLoadReport report)
    {
        var bytes = new List<byte>();
        void Add(int field, double value)
        {
            if (value != 0)
            {
                bytes.Add((byte)((field << 3) | 1));
                var buffer = new byte[8];
                BinaryPrimitives.WriteDoubleLittleEndian(buffer, value);
                bytes.AddRange(buffer);
            }
        }

        Add(1, report.CpuUtilization);
        Add(2, report.MemUtilization);
        bytes.AddRange([0x22, 0x0C, 0x0A, 0x01, (byte)'a', 0x11, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F]); // request_cost {a: 1.0}, skipped
        bytes.AddRange([0x18, 0x96, 0x01]); // rps (the deprecated varint) 150, not used when rps_fractional is set
        Add(6, report.RpsFractional);
        Add(7, report.Eps);
        Add(9, report.ApplicationUtilization);
        return Convert.ToBase64String([.. bytes]);
    }
}
