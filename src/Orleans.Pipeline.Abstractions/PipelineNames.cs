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

    /// <summary>Namespace of the input streams; the stream key is <c>pipeline/key</c>.</summary>
    public const string EventsNamespace = "pipeline.events";

    /// <summary>Namespace of the output streams; the stream key is the pipeline name.</summary>
    public const string ResultsNamespace = "pipeline.results";

    /// <summary>Longest accepted event key, in characters.</summary>
    public const int MaxKeyLength = 512;

    /// <summary>Pipeline names: lower-case letters, digits, '-' and '_', starting with a letter, at most 64 characters.</summary>
    [GeneratedRegex("^[a-z][a-z0-9_-]{0,63}$")]
    public static partial Regex PipelineNamePattern();

    /// <summary>The input stream key (and grain key) of a pipeline's key.</summary>
    public static string StreamKey(string pipeline, string key) => $"{pipeline}/{key}";

    /// <summary>Splits a grain key made by <see cref="StreamKey"/>.</summary>
    public static (string Pipeline, string Key) Split(string streamKey)
    {
        var slash = streamKey.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0) throw new ArgumentException($"'{streamKey}' is not a pipeline/key grain key", nameof(streamKey));
        return (streamKey[..slash], streamKey[(slash + 1)..]);
    }
}
