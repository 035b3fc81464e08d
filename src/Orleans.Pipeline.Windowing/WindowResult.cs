namespace Orleans.Pipeline.Windowing;

/// <summary>
/// One emission of one window. A window is identified by <c>[Start, End)</c>; each emission of it carries a larger
/// <see cref="Revision"/> (1, 2, …), so a consumer keeps the row with the highest revision per window (upsert), and
/// deletes it on <see cref="ResultKind.Retraction"/>.
/// </summary>
/// <param name="Start">Inclusive window start, Unix milliseconds.</param>
/// <param name="End">Exclusive window end, Unix milliseconds. For a session: last event time + gap.</param>
/// <param name="Revision">1 for the first emission of this window, +1 for each later one.</param>
/// <param name="Kind">Partial, final, update or retraction.</param>
/// <param name="EventCount">Events applied to the window so far.</param>
/// <param name="Values">One value per output name of the pipeline (<see cref="WindowEngine.OutputNames"/>); NaN where a field had no values.</param>
/// <param name="Watermark">The key's watermark at emission.</param>
/// <param name="Labels">
/// Per value, the key it belongs to, or null: set for the outputs of <c>top</c>/<c>bottom</c> in a chained pipeline
/// (the key that contributed each of the N values); null when no value has one.
/// </param>
/// <param name="States">
/// For a pipeline whose sketches are merged downstream (<see cref="WindowEngine.EmitStates"/>): the window's aggregator
/// objects (sketches), by the aggregation's object index; null otherwise. Carried to chained pipelines, not stored.
/// </param>
[GenerateSerializer, Immutable, Alias("pipeline.window-result")]
public sealed record WindowResult(
    [property: Id(0)] long Start,
    [property: Id(1)] long End,
    [property: Id(2)] int Revision,
    [property: Id(3)] ResultKind Kind,
    [property: Id(4)] long EventCount,
    [property: Id(5)] double[] Values,
    [property: Id(6)] long Watermark,
    [property: Id(7)] string?[]? Labels = null,
    [property: Id(8)] object?[]? States = null)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"[{Start}, {End}) r{Revision} {Kind} n={EventCount} wm={Watermark} [{string.Join(", ", Values.Select((v, i) => Labels?[i] is { } label ? $"{label}: {v}" : v.ToString(System.Globalization.CultureInfo.InvariantCulture)))}]";
}
