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
        CheckKeyAndTime(definition, item.Key, item.TimeMs, nowMs);
        var row = new double[fields.Count];
        for (var f = 0; f < fields.Count; f++)
        {
            if (item.Fields is null || !item.Fields.TryGetValue(fields[f], out var value))
                throw new ArgumentException($"pipeline '{definition.Name}', key '{item.Key}': field '{fields[f]}' is missing", nameof(item));
            row[f] = CheckValue(definition, item.Key, fields[f], value);
        }

        return row;
    }

    private static void CheckKeyAndTime(PipelineDefinition definition, string? key, long timeMs, long nowMs)
    {
        if (string.IsNullOrEmpty(key))
            throw new ArgumentException($"pipeline '{definition.Name}': event key is missing", "item");
        if (key.Length > PipelineNames.MaxKeyLength)
            throw new ArgumentException($"pipeline '{definition.Name}': event key is longer than {PipelineNames.MaxKeyLength} characters", "item");
        if (definition.Windowing.TimeMode == TimeMode.EventTime && !EventTimeRange.Contains(timeMs))
            throw new ArgumentOutOfRangeException("item", timeMs, $"pipeline '{definition.Name}', key '{key}': event time {timeMs} is outside [{EventTimeRange.MinMs}, {EventTimeRange.MaxMs}] Unix milliseconds");
        if (definition.IsTooFarAhead(timeMs, nowMs))
            throw new ArgumentOutOfRangeException("item", timeMs, $"pipeline '{definition.Name}', key '{key}': event time {timeMs} is {timeMs - nowMs} ms ahead of the clock ({nowMs}); at most {definition.MaxTimeAheadMs} ms ahead is accepted (the pipeline's MaxTimeAhead)");
    }

    private static double CheckValue(PipelineDefinition definition, string key, string field, double value) =>
        double.IsFinite(value)
            ? value
            : throw new ArgumentException($"pipeline '{definition.Name}', key '{key}': field '{field}' is {(double.IsNaN(value) ? "NaN" : "infinite")}, not a finite number", "item");

    /// <summary>Every event of a request, all or nothing: the first invalid one throws <see cref="InvalidEventException"/> with its index.</summary>
    public static ValidatedEvents ValidateAll(PipelineDefinition definition, string[] fields, IReadOnlyList<PipelineEvent> events, long nowMs)
    {
        var keys = new string[events.Count];
        var times = new long[events.Count];
        var rows = new double[events.Count][];
        for (var i = 0; i < events.Count; i++)
        {
            try
            {
                rows[i] = Validate(definition, fields, events[i], nowMs);
                keys[i] = events[i].Key;
                times[i] = events[i].TimeMs;
            }
            catch (ArgumentException e)
            {
                throw Invalid(i, e);
            }
        }

        return new ValidatedEvents(definition.Name, fields, keys, times, rows);
    }

    /// <summary>
    /// Events given in columns (<paramref name="keys"/>, <paramref name="times"/> and one column per field, each as
    /// long as <paramref name="keys"/>), all or nothing like <see cref="ValidateAll"/>; columns of fields the
    /// pipeline does not read are ignored.
    /// </summary>
    public static ValidatedEvents ValidateColumns(
        PipelineDefinition definition, string[] fields, IReadOnlyList<string> keys, IReadOnlyList<long> times,
        IReadOnlyList<(string Name, IReadOnlyList<double> Values)> columns, long nowMs)
    {
        var count = keys.Count;
        if (times.Count != count)
            throw new InvalidEventException(-1, $"pipeline '{definition.Name}': {count} keys but {times.Count} times; every column needs one entry per key");
        var byField = new IReadOnlyList<double>?[fields.Length];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, values) in columns)
        {
            if (!seen.Add(name)) throw new InvalidEventException(-1, $"pipeline '{definition.Name}': field '{name}' has more than one column");
            if (values.Count != count)
                throw new InvalidEventException(-1, $"pipeline '{definition.Name}': field '{name}' has {values.Count} values for {count} keys; every column needs one entry per key");
            var at = Array.IndexOf(fields, name);
            if (at >= 0) byField[at] = values;
        }

        for (var f = 0; f < fields.Length; f++)
            if (byField[f] is null && count > 0)
                throw new InvalidEventException(-1, $"pipeline '{definition.Name}': field '{fields[f]}' has no column");

        var keyArray = new string[count];
        var timeArray = new long[count];
        var rows = new double[count][];
        for (var i = 0; i < count; i++)
        {
            try
            {
                var key = keys[i];
                CheckKeyAndTime(definition, key, times[i], nowMs);
                var row = new double[fields.Length];
                for (var f = 0; f < row.Length; f++) row[f] = CheckValue(definition, key, fields[f], byField[f]![i]);
                keyArray[i] = key;
                timeArray[i] = times[i];
                rows[i] = row;
            }
            catch (ArgumentException e)
            {
                throw Invalid(i, e);
            }
        }

        return new ValidatedEvents(definition.Name, fields, keyArray, timeArray, rows);
    }

    private static InvalidEventException Invalid(int index, ArgumentException e) =>
        new(index, e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal));
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
        var definition = await FindPublishableAsync(pipeline);
        return EventValidator.ValidateAll(definition, _fields[definition.Name], events, _time.GetUtcNow().ToUnixTimeMilliseconds());
    }

    /// <summary>
    /// Validates a request's events given in columns: event i is (<paramref name="keys"/>[i], <paramref name="times"/>[i],
    /// and each field column's value i). All or nothing, as <see cref="ValidateAsync"/>; columns of different lengths,
    /// a field with two columns or a missing field column throw <see cref="InvalidEventException"/> with index -1.
    /// Columns of fields the pipeline does not read are ignored.
    /// </summary>
    public async Task<ValidatedEvents> ValidateColumnsAsync(string pipeline, IReadOnlyList<string> keys, IReadOnlyList<long> times, IReadOnlyList<(string Name, IReadOnlyList<double> Values)> fields)
    {
        var definition = await FindPublishableAsync(pipeline);
        return EventValidator.ValidateColumns(definition, _fields[definition.Name], keys, times, fields, _time.GetUtcNow().ToUnixTimeMilliseconds());
    }
}

/// <summary>A request's events, every one valid, ready for <see cref="PipelineClient.PublishAndWaitAsync"/>.</summary>
public sealed class ValidatedEvents
{
    internal ValidatedEvents(string pipeline, string[] fields, string[] keys, long[] times, double[][] rows)
    {
        Pipeline = pipeline;
        Fields = fields;
        Keys = keys;
        Times = times;
        Rows = rows;
    }

    /// <summary>The pipeline.</summary>
    public string Pipeline { get; }

    /// <summary>How many events.</summary>
    public int Count => Keys.Length;

    internal string[] Fields { get; }

    internal string[] Keys { get; }

    internal long[] Times { get; }

    internal double[][] Rows { get; }
}

/// <summary>
/// An event of a request is invalid; <see cref="Index"/> says which (0-based), or is -1 when the request's shape is
/// wrong (columns of different lengths). Nothing of the request was published.
/// </summary>
public sealed class InvalidEventException(int index, string problem) : ArgumentException(index >= 0 ? $"event {index}: {problem}" : problem)
{
    /// <summary>The invalid event's position in the request, or -1 for the request as a whole.</summary>
    public int Index { get; } = index;
}

/// <summary>The pipeline named is not one the cluster runs.</summary>
public sealed class UnknownPipelineException(string message) : ArgumentException(message);
