using System.Globalization;
using System.Text;

namespace MeshClient.ConsulServer;

/// <summary>Go's <c>time.ParseDuration</c> and <c>time.Duration.String()</c>, as Consul reads and writes durations.</summary>
public static class GoDuration
{
    /// <summary>Parses "10s", "1m30s", "1.5h", "300ms", "0" (a unit is required except for 0).</summary>
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        var s = text.AsSpan();
        var negative = false;
        if (s[0] is '-' or '+')
        {
            negative = s[0] == '-';
            s = s[1..];
        }

        if (s.SequenceEqual("0"))
        {
            return true;
        }

        if (s.IsEmpty)
        {
            return false;
        }

        double totalNs = 0;
        while (!s.IsEmpty)
        {
            var i = 0;
            while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.'))
            {
                i++;
            }

            if (i == 0 || !double.TryParse(s[..i], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            {
                return false;
            }

            s = s[i..];
            var j = 0;
            while (j < s.Length && !char.IsAsciiDigit(s[j]) && s[j] != '.')
            {
                j++;
            }

            double unit = s[..j] switch
            {
                "ns" => 1,
                "us" or "µs" or "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => -1,
            };
            if (unit < 0)
            {
                return false;
            }

            totalNs += number * unit;
            s = s[j..];
        }

        value = TimeSpan.FromTicks((long)(totalNs / 100) * (negative ? -1 : 1));
        return true;
    }

    /// <summary>Formats like Go: "10s", "1m30s", "1.5s", "500ms", "0s".</summary>
    public static string Format(TimeSpan value)
    {
        if (value == TimeSpan.Zero)
        {
            return "0s";
        }

        var builder = new StringBuilder();
        if (value < TimeSpan.Zero)
        {
            builder.Append('-');
            value = value.Negate();
        }

        if (value < TimeSpan.FromSeconds(1))
        {
            var ms = value.TotalMilliseconds;
            if (ms >= 1)
            {
                return builder.Append(ms.ToString("0.######", CultureInfo.InvariantCulture)).Append("ms").ToString();
            }

            return builder.Append((value.Ticks / 10.0).ToString("0.###", CultureInfo.InvariantCulture)).Append("µs").ToString();
        }

        var hours = (long)value.TotalHours;
        var minutes = value.Minutes;
        var seconds = value.TotalSeconds - (hours * 3600) - (minutes * 60);
        if (hours > 0)
        {
            builder.Append(hours.ToString(CultureInfo.InvariantCulture)).Append('h');
        }

        if (hours > 0 || minutes > 0)
        {
            builder.Append(minutes.ToString(CultureInfo.InvariantCulture)).Append('m');
        }

        builder.Append(seconds.ToString("0.#########", CultureInfo.InvariantCulture)).Append('s');
        return builder.ToString();
    }
}
