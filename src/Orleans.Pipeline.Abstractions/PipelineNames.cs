using System.Text.RegularExpressions;

namespace Orleans.Pipeline;

/// <summary>How pipelines, keys and streams are named.</summary>
public static partial class PipelineNames
{
    /// <summary>The stream provider of the input events (durable in cluster mode).</summary>
    public const string StreamProvider = "pipeline";

    /// <summary>
    /// The stream provider of the live results feed: best effort, in memory in both modes. The durable record of
    /// results is the key's state (embedded) or the results table (cluster mode).
    /// </summary>
    public const string ResultsStreamProvider = "pipeline-results";

    /// <summary>Namespace of the input streams; the stream key is <c>pipeline/partition</c> (<see cref="PartitionKey"/>).</summary>
    public const string EventsNamespace = "pipeline.partitions";

    /// <summary>Namespace of the output streams; the stream key is the pipeline name.</summary>
    public const string ResultsNamespace = "pipeline.results";

    /// <summary>Longest accepted event key, in characters.</summary>
    public const int MaxKeyLength = 512;

    /// <summary>Pipeline names: lower-case letters, digits, '-' and '_', starting with a letter, at most 64 characters.</summary>
    [GeneratedRegex("^[a-z][a-z0-9_-]{0,63}$")]
    public static partial Regex PipelineNamePattern();

    /// <summary>The grain key of a pipeline's key.</summary>
    public static string StreamKey(string pipeline, string key) => $"{pipeline}/{key}";

    /// <summary>The input stream key (and partition grain key) of a pipeline's partition.</summary>
    public static string PartitionKey(string pipeline, int partition) => $"{pipeline}/{partition}";

    /// <summary>
    /// The partition of a key: FNV-1a (64-bit) of its UTF-16 code units, modulo <paramref name="partitions"/>. Stable
    /// across processes, platforms and releases: every producer, in any language, must compute the same.
    /// </summary>
    public static int PartitionOf(string key, int partitions)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        var hash = 14695981039346656037UL;
        foreach (var c in key)
        {
            hash = (hash ^ (byte)c) * 1099511628211UL;
            hash = (hash ^ (byte)(c >> 8)) * 1099511628211UL;
        }

        return (int)(hash % (ulong)partitions);
    }

    /// <summary>Splits a grain key made by <see cref="StreamKey"/>.</summary>
    public static (string Pipeline, string Key) Split(string streamKey)
    {
        var slash = streamKey.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0) throw new ArgumentException($"'{streamKey}' is not a pipeline/key grain key", nameof(streamKey));
        return (streamKey[..slash], streamKey[(slash + 1)..]);
    }
}
