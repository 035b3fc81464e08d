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
/// emission order; values follow the pipeline's output names. <paramref name="Replayed"/>: results emitted before,
/// handed out again because the delivery that fired them came again after a crash (for pipelines that feed others).
/// </summary>
[GenerateSerializer, Immutable, Alias("pipeline.result-batch")]
public sealed record ResultBatch(
    [property: Id(0)] string Pipeline,
    [property: Id(1)] string Key,
    [property: Id(2)] WindowResult[] Results,
    [property: Id(3)] LateEvent[] LateEvents,
    [property: Id(4)] bool Replayed = false);

/// <summary>A key's queryable windows.</summary>
/// <param name="Open">Windows held by the key: open ones (partial values) and fired ones within the lateness.</param>
/// <param name="Closed">The most recent final results and updates, newest last, at most the pipeline's <c>ClosedWindowsKept</c>.</param>
/// <param name="Watermark">The key's watermark.</param>
/// <param name="AppliedEvents">Events applied so far.</param>
/// <param name="LateEvents">Late events so far.</param>
/// <param name="DuplicateBatches">Batches dropped as repeats.</param>
/// <param name="RejectedEvents">Events the key refused (dead letters: time out of range or too far ahead), not applied.</param>
[GenerateSerializer, Immutable, Alias("pipeline.key-windows")]
public sealed record KeyWindows(
    [property: Id(0)] WindowResult[] Open,
    [property: Id(1)] WindowResult[] Closed,
    [property: Id(2)] long Watermark,
    [property: Id(3)] long AppliedEvents,
    [property: Id(4)] long LateEvents,
    [property: Id(5)] long DuplicateBatches,
    [property: Id(6)] long RejectedEvents = 0);

/// <summary>
/// The live results stream item: what one silo's keys fired during one interval, for many keys at once, so the rate
/// of messages does not grow with the number of keys. Every key's batch has a position in its silo's feed of the
/// pipeline: <paramref name="Batches"/>[i] is at <paramref name="FirstPosition"/> + i of <paramref name="Origin"/>.
/// A subscriber that sees a position skipped knows it missed results, and can read them back from the silo's
/// recent-results log (<see cref="IResultLogGrain"/>) while it still holds them.
/// </summary>
/// <param name="Pipeline">The pipeline.</param>
/// <param name="Batches">Keys' result batches, in the order the keys fired.</param>
/// <param name="Origin">The silo whose feed this is (its address and generation: a restarted silo is a new origin).</param>
/// <param name="FirstPosition">The feed position of the first batch (positions start at 1).</param>
[GenerateSerializer, Immutable, Alias("pipeline.result-feed")]
public sealed record ResultFeed(
    [property: Id(0)] string Pipeline,
    [property: Id(1)] ResultBatch[] Batches,
    [property: Id(2)] string Origin,
    [property: Id(3)] long FirstPosition);

/// <summary>
/// Part of a silo's recent-results log of a pipeline: the batches after a position, and what the log still holds.
/// </summary>
/// <param name="Origin">The silo whose log this is.</param>
/// <param name="Oldest">The oldest position the log still holds (positions before it were overwritten).</param>
/// <param name="Latest">The latest position written so far (0: none).</param>
/// <param name="FirstPosition">The position of <paramref name="Batches"/>[0].</param>
/// <param name="Batches">Batches from <paramref name="FirstPosition"/> on, in order.</param>
[GenerateSerializer, Immutable, Alias("pipeline.result-log-page")]
public sealed record ResultLogPage(
    [property: Id(0)] string Origin,
    [property: Id(1)] long Oldest,
    [property: Id(2)] long Latest,
    [property: Id(3)] long FirstPosition,
    [property: Id(4)] ResultBatch[] Batches);
