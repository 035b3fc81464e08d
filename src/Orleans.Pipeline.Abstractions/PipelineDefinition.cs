using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline;

/// <summary>
/// A named pipeline: how its events are keyed and timed, and how they are windowed and aggregated.
/// </summary>
/// <param name="Name">Unique name (see <see cref="PipelineNames.PipelineNamePattern"/>).</param>
/// <param name="Windowing">Windows, clock, watermark, lateness, early firing and aggregations.</param>
/// <param name="KeyField">Name of the key in a JSON/schemaless event (default <c>key</c>).</param>
/// <param name="TimeField">Name of the event time in a JSON/schemaless event (default <c>time</c>).</param>
/// <param name="ClosedWindowsKept">How many closed windows each key keeps queryable.</param>
/// <param name="Partitions">
/// Stream partitions of the pipeline: keys are spread over them by <see cref="PipelineNames.PartitionOf"/>, and one
/// stream item carries events of many keys of one partition. More partitions, more parallel deliveries; fewer, larger
/// per-key slices. Fixed for the life of the pipeline's data: changing it moves keys between partitions.
/// </param>
/// <param name="MaxTimeAheadMs">
/// How far ahead of the clock an event time may be (0: no limit). An event further ahead is refused: by the client
/// and the gateway against their clocks, and by the key against the time its item was sent, as a dead letter with
/// reason <c>event-time-too-far-ahead</c>. Without it one event from a wrong clock (year 9999) would move its key's
/// watermark so far that every later event is late.
/// </param>
[GenerateSerializer, Immutable, Alias("pipeline.pipeline-definition")]
public sealed record PipelineDefinition(
    [property: Id(0)] string Name,
    [property: Id(1)] WindowingDefinition Windowing,
    [property: Id(2)] string KeyField = "key",
    [property: Id(3)] string TimeField = "time",
    [property: Id(4)] int ClosedWindowsKept = 16,
    [property: Id(5)] int Partitions = PipelineDefinition.DefaultPartitions,
    [property: Id(6)] long MaxTimeAheadMs = PipelineDefinition.DefaultMaxTimeAheadMs)
{
    /// <summary>Event times at most a day ahead of the clock unless configured.</summary>
    public const long DefaultMaxTimeAheadMs = 86_400_000;

    /// <summary>Whether an event at <paramref name="timeMs"/> is further ahead of <paramref name="nowMs"/> than the pipeline allows.</summary>
    public bool IsTooFarAhead(long timeMs, long nowMs) =>
        MaxTimeAheadMs > 0 && Windowing.TimeMode == TimeMode.EventTime && nowMs > 0 && timeMs - nowMs > MaxTimeAheadMs;

    /// <summary>Partitions per pipeline unless configured.</summary>
    public const int DefaultPartitions = 16;

    /// <summary>Returns every problem with this definition, each prefixed with the pipeline's name.</summary>
    public IEnumerable<string> Validate(AggregatorRegistry? registry = null)
    {
        if (string.IsNullOrEmpty(Name) || !PipelineNames.PipelineNamePattern().IsMatch(Name))
            yield return $"pipeline '{Name}': name must match {PipelineNames.PipelineNamePattern()}";
        if (Windowing is null)
        {
            yield return $"pipeline '{Name}': windowing is missing";
            yield break;
        }

        foreach (var problem in Windowing.Validate(registry)) yield return $"pipeline '{Name}': {problem}";
        if (ClosedWindowsKept is < 0 or > 10_000) yield return $"pipeline '{Name}': closed windows kept must be in [0, 10000]";
        if (Partitions is < 1 or > 4096) yield return $"pipeline '{Name}': partitions must be in [1, 4096]";
        if (MaxTimeAheadMs < 0) yield return $"pipeline '{Name}': max time ahead must not be negative (0: no limit)";
    }

    /// <summary>Names of the result values, in order.</summary>
    public IReadOnlyList<string> OutputNames(AggregatorRegistry? registry = null)
    {
        registry ??= AggregatorRegistry.Default;
        return Windowing.Aggregations.SelectMany(a => registry.Create(a).OutputNames(a)).ToArray();
    }
}
