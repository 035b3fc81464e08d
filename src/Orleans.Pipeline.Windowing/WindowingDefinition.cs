using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Windowing;

/// <summary>
/// Everything the engine needs to know about one pipeline: windows, clock, watermark, lateness, early firing and
/// aggregations. Times are milliseconds. Events are given to the engine as one value per entry of <see cref="Fields"/>.
/// </summary>
/// <param name="Window">Tumbling, hopping or session windows.</param>
/// <param name="Aggregations">One or more aggregations; their output names must be distinct.</param>
/// <param name="TimeMode">Event time (default) or processing time.</param>
/// <param name="MaxOutOfOrdernessMs">Watermark = highest event time seen − this. Events this much out of order are still on time.</param>
/// <param name="AllowedLatenessMs">How long after the watermark passes a window's end late events still update it.</param>
/// <param name="IdleTimeoutMs">
/// After this much processing time without events, <see cref="WindowEngine.Advance"/> moves the key's watermark as if
/// event time followed processing time, so a quiet key still closes its windows. Null turns it off (replays).
/// </param>
/// <param name="EarlyFiringIntervalMs">When set, <see cref="WindowEngine.Advance"/> emits partial results of changed open windows this often.</param>
[GenerateSerializer, Immutable, Alias("pipeline.windowing-definition")]
public sealed record WindowingDefinition(
    [property: Id(0)] WindowSpec Window,
    [property: Id(1)] AggregationSpec[] Aggregations,
    [property: Id(2)] TimeMode TimeMode = TimeMode.EventTime,
    [property: Id(3)] long MaxOutOfOrdernessMs = 0,
    [property: Id(4)] long AllowedLatenessMs = 0,
    [property: Id(5)] long? IdleTimeoutMs = null,
    [property: Id(6)] long? EarlyFiringIntervalMs = null)
{
    /// <summary>The numeric fields the aggregations read, in the order the engine expects their values.</summary>
    public IReadOnlyList<string> Fields =>
        Aggregations.Where(a => a.Field is not null).Select(a => a.Field!).Distinct(StringComparer.Ordinal).ToArray();

    /// <summary>Returns the problems with this definition, or nothing when it is valid.</summary>
    public IEnumerable<string> Validate(AggregatorRegistry? registry = null)
    {
        registry ??= AggregatorRegistry.Default;
        if (Window is null)
        {
            yield return "window is missing";
        }
        else
        {
            foreach (var problem in Window.Validate()) yield return problem;
        }

        if (!Enum.IsDefined(TimeMode)) yield return $"unknown time mode {(int)TimeMode}";
        if (MaxOutOfOrdernessMs < 0) yield return "max out-of-orderness must be >= 0";
        if (AllowedLatenessMs < 0) yield return "allowed lateness must be >= 0";
        if (IdleTimeoutMs is <= 0) yield return "idle timeout must be > 0 when set";
        if (EarlyFiringIntervalMs is <= 0) yield return "early firing interval must be > 0 when set";
        if (Aggregations is not { Length: > 0 })
        {
            yield return "at least one aggregation is required";
            yield break;
        }

        foreach (var aggregation in Aggregations)
            foreach (var problem in registry.Validate(aggregation))
                yield return problem;

        var duplicates = Aggregations.GroupBy(a => a.OutputName, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key);
        foreach (var name in duplicates) yield return $"aggregation output name '{name}' is used more than once";
    }

    /// <summary>
    /// Identifies the layout of persisted window state: state written under one layout cannot be read under another.
    /// Clock, watermark and lateness settings may change freely; the window shape and aggregations may not.
    /// </summary>
    public string Layout => $"{Window}|{string.Join(",", Aggregations.Select(a => $"{a.Function}({a.Field}){(a.Arguments is { Length: > 0 } args ? "[" + string.Join(";", args) + "]" : "")}"))}";
}

/// <summary>The range of event times the engine accepts: 1970-01-01 to 9999-12-31, in Unix milliseconds.</summary>
public static class EventTimeRange
{
    /// <summary>1970-01-01T00:00:00Z.</summary>
    public const long MinMs = 0;

    /// <summary>9999-12-31T23:59:59.999Z.</summary>
    public const long MaxMs = 253_402_300_799_999;

    /// <summary>Whether <paramref name="unixMs"/> is accepted.</summary>
    public static bool Contains(long unixMs) => (ulong)unixMs <= MaxMs;
}
