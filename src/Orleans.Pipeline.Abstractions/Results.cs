using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline;

/// <summary>An event that arrived after all its windows had expired, with the key's watermark at that moment.</summary>
[GenerateSerializer, Immutable, Alias("pipeline.late-event")]
public sealed record LateEvent(
    [property: Id(0)] long TimeMs,
    [property: Id(1)] double[] Values,
    [property: Id(2)] long Watermark);

/// <summary>
/// The output stream item: what one delivered batch (or timer tick) of one key produced. Window results are in
/// emission order; values follow the pipeline's output names.
/// </summary>
[GenerateSerializer, Immutable, Alias("pipeline.result-batch")]
public sealed record ResultBatch(
    [property: Id(0)] string Pipeline,
    [property: Id(1)] string Key,
    [property: Id(2)] WindowResult[] Results,
    [property: Id(3)] LateEvent[] LateEvents);

/// <summary>A key's queryable windows.</summary>
/// <param name="Open">Windows held by the key: open ones (partial values) and fired ones within the lateness.</param>
/// <param name="Closed">The most recent final results and updates, newest last, at most the pipeline's <c>ClosedWindowsKept</c>.</param>
/// <param name="Watermark">The key's watermark.</param>
/// <param name="AppliedEvents">Events applied so far.</param>
/// <param name="LateEvents">Late events so far.</param>
/// <param name="DuplicateBatches">Batches dropped as repeats.</param>
[GenerateSerializer, Immutable, Alias("pipeline.key-windows")]
public sealed record KeyWindows(
    [property: Id(0)] WindowResult[] Open,
    [property: Id(1)] WindowResult[] Closed,
    [property: Id(2)] long Watermark,
    [property: Id(3)] long AppliedEvents,
    [property: Id(4)] long LateEvents,
    [property: Id(5)] long DuplicateBatches);

/// <summary>
/// The live results stream item: what one partition item (or one key's timer) produced, for many keys at once, so
/// the rate of messages does not grow with the number of keys.
/// </summary>
[GenerateSerializer, Immutable, Alias("pipeline.result-feed")]
public sealed record ResultFeed(
    [property: Id(0)] string Pipeline,
    [property: Id(1)] ResultBatch[] Batches);
