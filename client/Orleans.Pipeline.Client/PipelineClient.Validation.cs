using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Client;

/// <summary>What the client checks in an event before it accepts it (the gateway shares it through <see cref="PipelineClient.ValidateAsync"/>).</summary>
internal static class EventValidator
{
    /// <summary>
    /// The event's values in the pipeline's field order, or an <see cref="ArgumentException"/> naming the problem:
    /// a missing or too long key, a time out of range or too far ahead of <paramref name="nowMs"/>, a missing or
    /// non-finite field.
    /// </summary>
    public static double[] Validate(PipelineDefinition definition, IReadOnlyList<string> fields, PipelineEvent item, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(item);
        if (string.IsNullOrEmpty(item.Key))
            throw new ArgumentException($"pipeline '{definition.Name}': event key is missing", nameof(item));
        if (item.Key.Length > PipelineNames.MaxKeyLength)
            throw new ArgumentException($"pipeline '{definition.Name}': event key is longer than {PipelineNames.MaxKeyLength} characters", nameof(item));
        if (definition.Windowing.TimeMode == TimeMode.EventTime && !EventTimeRange.Contains(item.TimeMs))
            throw new ArgumentOutOfRangeException(nameof(item), item.TimeMs, $"pipeline '{definition.Name}', key '{item.Key}': event time {item.TimeMs} is outside [{EventTimeRange.MinMs}, {EventTimeRange.MaxMs}] Unix milliseconds");
        if (definition.IsTooFarAhead(item.TimeMs, nowMs))
            throw new ArgumentOutOfRangeException(nameof(item), item.TimeMs, $"pipeline '{definition.Name}', key '{item.Key}': event time {item.TimeMs} is {item.TimeMs - nowMs} ms ahead of the clock ({nowMs}); at most {definition.MaxTimeAheadMs} ms ahead is accepted (the pipeline's MaxTimeAhead)");

        var row = new double[fields.Count];
        for (var f = 0; f < fields.Count; f++)
        {
            if (item.Fields is null || !item.Fields.TryGetValue(fields[f], out var value))
                throw new ArgumentException($"pipeline '{definition.Name}', key '{item.Key}': field '{fields[f]}' is missing", nameof(item));
            if (!double.IsFinite(value))
                throw new ArgumentException($"pipeline '{definition.Name}', key '{item.Key}': field '{fields[f]}' is {(double.IsNaN(value) ? "NaN" : "infinite")}, not a finite number", nameof(item));
            row[f] = value;
        }

        return row;
    }

    /// <summary>Every event of a request, all or nothing: the first invalid one throws <see cref="InvalidEventException"/> with its index.</summary>
    public static ValidatedEvents ValidateAll(PipelineDefinition definition, string[] fields, IReadOnlyList<PipelineEvent> events, long nowMs)
    {
        var rows = new double[events.Count][];
        for (var i = 0; i < events.Count; i++)
        {
            try
            {
                rows[i] = Validate(definition, fields, events[i], nowMs);
            }
            catch (ArgumentException e)
            {
                throw new InvalidEventException(i, e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal));
            }
        }

        return new ValidatedEvents(definition.Name, fields, events, rows);
    }
}

/// <summary>Validation of a whole request, for callers that publish with <see cref="PublishAndWaitAsync"/> (the gateway).</summary>
public sealed partial class PipelineClient
{
    /// <summary>
    /// Validates every event of a request (all or nothing: the first invalid one throws <see cref="InvalidEventException"/>
    /// with its index, an unknown pipeline <see cref="UnknownPipelineException"/>), without publishing anything.
    /// </summary>
    public async Task<ValidatedEvents> ValidateAsync(string pipeline, IReadOnlyList<PipelineEvent> events)
    {
        var definition = await FindAsync(pipeline);
        return EventValidator.ValidateAll(definition, _fields[definition.Name], events, _time.GetUtcNow().ToUnixTimeMilliseconds());
    }
}

/// <summary>A request's events, every one valid, ready for <see cref="PipelineClient.PublishAndWaitAsync"/>.</summary>
public sealed class ValidatedEvents
{
    internal ValidatedEvents(string pipeline, string[] fields, IReadOnlyList<PipelineEvent> events, double[][] rows)
    {
        Pipeline = pipeline;
        Fields = fields;
        Events = events;
        Rows = rows;
    }

    /// <summary>The pipeline.</summary>
    public string Pipeline { get; }

    /// <summary>How many events.</summary>
    public int Count => Events.Count;

    internal string[] Fields { get; }

    internal IReadOnlyList<PipelineEvent> Events { get; }

    internal double[][] Rows { get; }
}

/// <summary>An event of a request is invalid; <see cref="Index"/> says which (0-based). Nothing of the request was published.</summary>
public sealed class InvalidEventException(int index, string problem) : ArgumentException($"event {index}: {problem}")
{
    /// <summary>The invalid event's position in the request.</summary>
    public int Index { get; } = index;
}

/// <summary>The pipeline named is not one the cluster runs.</summary>
public sealed class UnknownPipelineException(string message) : ArgumentException(message);
