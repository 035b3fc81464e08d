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
/// <param name="Input">
/// For a chained pipeline: the pipeline whose results it reads, and how it keys them (<see cref="ChainInput"/>).
/// Nobody publishes to a chained pipeline; its windows close when every upstream partition's watermark has passed
/// them (or the partition is idle), so every upstream contribution to them has arrived.
/// </param>
[GenerateSerializer, Immutable, Alias("pipeline.pipeline-definition")]
public sealed record PipelineDefinition(
    [property: Id(0)] string Name,
    [property: Id(1)] WindowingDefinition Windowing,
    [property: Id(2)] string KeyField = "key",
    [property: Id(3)] string TimeField = "time",
    [property: Id(4)] int ClosedWindowsKept = 16,
    [property: Id(5)] int Partitions = PipelineDefinition.DefaultPartitions,
    [property: Id(6)] long MaxTimeAheadMs = PipelineDefinition.DefaultMaxTimeAheadMs,
    [property: Id(7)] ChainInput? Input = null)
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
        if (Input is null) yield break;
        foreach (var problem in Input.Validate()) yield return $"pipeline '{Name}': {problem}";
        if (Windowing.Window is { Kind: WindowKind.Session })
            yield return $"pipeline '{Name}': a chained pipeline has tumbling or hopping windows, not sessions";
        if (Windowing.TimeMode != TimeMode.EventTime)
            yield return $"pipeline '{Name}': a chained pipeline runs in event time (its watermark comes from its input)";
        if (Windowing.IdleTimeoutMs is not null || Windowing.EarlyFiringIntervalMs is not null)
            yield return $"pipeline '{Name}': a chained pipeline has no idle timeout or early firing of its own (its watermark comes from its input)";
    }

    /// <summary>
    /// Problems of the pipelines' chains taken together: unknown inputs, cycles, inputs that cannot feed (sessions,
    /// processing time), and downstream fields the input does not produce. Each names the pipeline.
    /// </summary>
    public static IEnumerable<string> ValidateChains(IReadOnlyCollection<PipelineDefinition> pipelines, AggregatorRegistry? registry = null)
    {
        var byName = pipelines.GroupBy(p => p.Name, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        foreach (var pipeline in pipelines)
        {
            if (pipeline.Input is not { } input || pipeline.Windowing is null) continue;
            if (!byName.TryGetValue(input.Pipeline ?? "", out var upstream))
            {
                yield return $"pipeline '{pipeline.Name}': its input pipeline '{input.Pipeline}' is not defined";
                continue;
            }

            if (upstream.Input is not null)
            {
                yield return pipeline.Name == upstream.Name || upstream.Input.Pipeline == pipeline.Name
                    ? $"pipeline '{pipeline.Name}': its input '{upstream.Name}' reads it back (a cycle)"
                    : $"pipeline '{pipeline.Name}': its input '{upstream.Name}' is chained itself; chains are one level deep";
                continue;
            }

            if (upstream.Windowing is null) continue;
            if (upstream.Windowing.TimeMode != TimeMode.EventTime || upstream.Windowing.Window is not { Kind: not WindowKind.Session })
            {
                yield return $"pipeline '{pipeline.Name}': its input '{upstream.Name}' must have tumbling or hopping windows in event time to feed another pipeline";
                continue;
            }

            IReadOnlyList<string> outputs;
            try
            {
                outputs = upstream.OutputNames(registry);
            }
            catch (ArgumentException)
            {
                continue; // reported by the upstream's own validation
            }

            var merges = Orleans.Pipeline.Windowing.Chaining.ChainedStage.MergedSketches(pipeline.Windowing, upstream.Windowing, registry);
            foreach (var a in pipeline.Windowing.Aggregations ?? [])
            {
                if (a.Field is not null && !outputs.Contains(a.Field, StringComparer.Ordinal) && !merges.ContainsKey(a))
                    yield return $"pipeline '{pipeline.Name}': aggregation '{a.OutputName}' reads '{a.Field}', which its input '{upstream.Name}' does not produce (it produces {string.Join(", ", outputs)})";
            }

            if (input.KeyField is { } keyField && !outputs.Contains(keyField, StringComparer.Ordinal))
                yield return $"pipeline '{pipeline.Name}': input key 'field:{keyField}' reads a value its input '{upstream.Name}' does not produce (it produces {string.Join(", ", outputs)})";
        }
    }

    /// <summary>Names of the result values, in order.</summary>
    public IReadOnlyList<string> OutputNames(AggregatorRegistry? registry = null)
    {
        registry ??= AggregatorRegistry.Default;
        return Windowing.Aggregations.SelectMany(a => registry.Create(a).OutputNames(a)).ToArray();
    }
}
