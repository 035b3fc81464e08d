namespace Orleans.Pipeline;

/// <summary>
/// One event as a producer publishes it: a key, an event time, numeric fields and optional string tags. Any
/// language can build it; the client SDK groups events per partition of keys into <see cref="PartitionBatch"/> stream items.
/// </summary>
/// <param name="Key">The key whose windows the event belongs to; required, non-empty.</param>
/// <param name="TimeMs">Event time, Unix milliseconds, within <see cref="Windowing.EventTimeRange"/>.</param>
/// <param name="Fields">Numeric fields by name; must be finite. A field the pipeline reads but the event lacks is missing (skipped by its aggregations).</param>
/// <param name="Tags">Optional string tags; carried for producers' convenience, not aggregated.</param>
/// <param name="EventId">Optional producer-side id, for the producer's own tracing.</param>
public sealed record PipelineEvent(
    string Key,
    long TimeMs,
    IReadOnlyDictionary<string, double> Fields,
    IReadOnlyDictionary<string, string>? Tags = null,
    string? EventId = null)
{
    /// <summary>An event with the given fields.</summary>
    public static PipelineEvent Create(string key, DateTimeOffset time, params (string Name, double Value)[] fields) =>
        new(key, time.ToUnixTimeMilliseconds(), fields.ToDictionary(f => f.Name, f => f.Value, StringComparer.Ordinal));
}
