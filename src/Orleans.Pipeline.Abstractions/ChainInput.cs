using System.Globalization;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline;

/// <summary>
/// Where a chained pipeline's input comes from: another pipeline's results, and how they are keyed downstream.
/// Each upstream window result becomes one contribution at its window's last instant; the downstream pipeline's
/// aggregations read the upstream's output names as fields. <see cref="KeyBy"/> is one of:
/// <list type="bullet">
/// <item><c>key</c>: the upstream key (a per-key pipeline over the upstream's windows);</item>
/// <item><c>all</c>: one key, <c>all</c>: the window itself is the group (a global aggregate per window);</item>
/// <item><c>hash:N</c>: the upstream key's bucket among N, keys <c>0</c> … <c>N−1</c> (partial aggregates spread over N grains);</item>
/// <item><c>prefix:SEP</c>: the upstream key up to the first SEP (a tag in the key, such as the region of <c>eu/device-7</c>);</item>
/// <item><c>field:NAME</c>: the upstream result's value NAME, as a number (a category computed upstream, say).</item>
/// </list>
/// </summary>
/// <param name="Pipeline">The upstream pipeline.</param>
/// <param name="KeyBy">How the downstream key is chosen (default <c>key</c>).</param>
[GenerateSerializer, Immutable, Alias("pipeline.chain-input")]
public sealed record ChainInput([property: Id(0)] string Pipeline, [property: Id(1)] string KeyBy = "key")
{
    /// <summary>The single downstream key of <c>all</c>.</summary>
    public const string AllKey = "all";

    /// <summary>Problems with <see cref="KeyBy"/>'s syntax (the upstream's output names are checked by the catalog).</summary>
    public IEnumerable<string> Validate()
    {
        if (string.IsNullOrEmpty(Pipeline)) yield return "input pipeline is missing";
        var (kind, argument) = Parse();
        switch (kind)
        {
            case "key" or "all" when argument is null:
                break;
            case "hash" when int.TryParse(argument, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 65_536:
                break;
            case "hash":
                yield return $"input key 'hash:{argument}': the number of buckets must be in [1, 65536]";
                break;
            case "prefix" when !string.IsNullOrEmpty(argument):
                break;
            case "field" when !string.IsNullOrEmpty(argument):
                break;
            default:
                yield return $"input key '{KeyBy}' is not one of key, all, hash:N, prefix:SEP, field:NAME";
                break;
        }
    }

    /// <summary>The output name <c>field:NAME</c> reads, or null.</summary>
    public string? KeyField => Parse() is ("field", { } name) ? name : null;

    /// <summary>
    /// How to find the downstream key of an upstream result, parsed once: given the upstream key and the result's
    /// values, the key, or null when it has none (<c>field:NAME</c> with no value). <c>prefix:SEP</c> on a key without
    /// SEP keeps the whole key.
    /// </summary>
    /// <param name="upstreamOutputs">The upstream's output names (<c>field:NAME</c> reads NAME's position).</param>
    public Func<string, double[], string?> Compile(IReadOnlyList<string> upstreamOutputs)
    {
        var (kind, argument) = Parse();
        switch (kind)
        {
            case "key":
                return (key, _) => key;
            case "all":
                return (_, _) => AllKey;
            case "hash":
                var buckets = int.Parse(argument!, CultureInfo.InvariantCulture);
                return (key, _) => PipelineNames.PartitionOf(key, buckets).ToString(CultureInfo.InvariantCulture);
            case "prefix":
                var separator = argument!;
                return (key, _) => key.IndexOf(separator, StringComparison.Ordinal) is var at and >= 0 ? key[..at] : key;
            case "field":
                var field = upstreamOutputs.ToList().IndexOf(argument!);
                return (_, values) => field >= 0 && field < values.Length && !double.IsNaN(values[field])
                    ? values[field].ToString("R", CultureInfo.InvariantCulture)
                    : null;
            default:
                throw new InvalidOperationException($"input key '{KeyBy}' is not one of key, all, hash:N, prefix:SEP, field:NAME");
        }
    }

    private (string Kind, string? Argument) Parse()
    {
        var keyBy = KeyBy ?? "";
        var colon = keyBy.IndexOf(':');
        return colon < 0 ? (keyBy, null) : (keyBy[..colon], keyBy[(colon + 1)..]);
    }
}
