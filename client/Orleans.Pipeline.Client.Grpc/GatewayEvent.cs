namespace Orleans.Pipeline.Client;

/// <summary>
/// One event as <see cref="PipelineGatewayClient"/> publishes it: a key, an event time and numeric fields (the
/// gateway's <c>orleans.pipeline.v1.Event</c>). The gateway validates it as the in-cluster SDK does: a non-empty key,
/// a time in range and every field the pipeline reads, each a finite number.
/// </summary>
/// <param name="Key">The key whose windows the event belongs to; required, at most 512 characters.</param>
/// <param name="TimeMs">Event time, Unix milliseconds.</param>
/// <param name="Fields">Numeric fields by name.</param>
public sealed record GatewayEvent(string Key, long TimeMs, IReadOnlyDictionary<string, double> Fields)
{
    /// <summary>An event with the given fields.</summary>
    public static GatewayEvent Create(string key, DateTimeOffset time, params (string Name, double Value)[] fields) =>
        new(key, time.ToUnixTimeMilliseconds(), fields.ToDictionary(f => f.Name, f => f.Value, StringComparer.Ordinal));
}
