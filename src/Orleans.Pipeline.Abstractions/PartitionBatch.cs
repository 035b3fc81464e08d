namespace Orleans.Pipeline;

/// <summary>
/// The stream item: events of many keys of one partition of a pipeline, grouped by key and stored column-wise. One
/// item is one stream delivery, however many keys it holds, so the cost of transport does not grow with the number
/// of keys. <see cref="ProducerId"/> and <see cref="Sequence"/> identify the item: the partition applies each
/// (producer, sequence) once and in the producer's order, so producers retry without creating duplicates.
/// </summary>
/// <param name="Partition">The partition, <see cref="PipelineNames.PartitionOf"/> of every key in it.</param>
/// <param name="ProducerId">The publishing client's id.</param>
/// <param name="Sequence">1, 2, 3, … per producer and partition; a retry reuses it.</param>
/// <param name="FieldNames">Names of the value columns.</param>
/// <param name="Keys">The distinct keys, in the order their events are stored.</param>
/// <param name="KeyEnds">For each key, the exclusive end of its events in <see cref="Times"/> (the start is the previous key's end).</param>
/// <param name="Times">Event time of each event, Unix milliseconds; one key's events in the order they were published.</param>
/// <param name="Values">Row-major values, <c>Times.Length × FieldNames.Length</c>; NaN marks a missing value.</param>
/// <param name="SentAtMs">When the producer sent the item (processing time), for end-to-end latency.</param>
/// <param name="Requests">
/// The tagged requests some of the item's events belong to (a gateway's requests with a request id), or null. The
/// partition applies each request's events once, whichever item brings them: a request that one gateway stored in
/// part before it died and another published again (under the same tag) is neither lost nor doubled.
/// </param>
/// <param name="EventRequests">Per event (in <see cref="Times"/> order), its index in <see cref="Requests"/>, or -1; null when <see cref="Requests"/> is.</param>
/// <param name="TraceParent">The W3C <c>traceparent</c> of the producer's send, when traced: the partition's apply is its child.</param>
/// <param name="OpenFrom">
/// The producer's oldest tag that may still be published again (0: none tagged); the partition forgets this
/// producer's applied tags below it.
/// </param>
/// <param name="PublishedAtMs">
/// When the item's oldest event was handed to the producer (processing time; 0: unknown): with
/// <see cref="SentAtMs"/>, how long its events waited in the producer's buffer. Keys measure idleness against it.
/// </param>
[GenerateSerializer, Immutable, Alias("pipeline.partition-batch")]
public sealed record PartitionBatch(
    [property: Id(0)] int Partition,
    [property: Id(1)] Guid ProducerId,
    [property: Id(2)] long Sequence,
    [property: Id(3)] string[] FieldNames,
    [property: Id(4)] string[] Keys,
    [property: Id(5)] int[] KeyEnds,
    [property: Id(6)] long[] Times,
    [property: Id(7)] double[] Values,
    [property: Id(8)] long SentAtMs,
    [property: Id(9)] RequestTag[]? Requests = null,
    [property: Id(10)] int[]? EventRequests = null,
    [property: Id(11)] long OpenFrom = 0,
    [property: Id(12)] string? TraceParent = null,
    [property: Id(13)] long PublishedAtMs = 0)
{
    /// <summary>Number of events in the item.</summary>
    public int Count => Times.Length;

    /// <summary>A one-key item (tests, tools).</summary>
    public static PartitionBatch ForKey(string key, int partitions, Guid producer, long sequence, string[] fields, long[] times, double[] values, long sentAtMs = 0) =>
        new(PipelineNames.PartitionOf(key, partitions), producer, sequence, fields, [key], [times.Length], times, values, sentAtMs);

    /// <summary>Why the item's shape is inconsistent, or null when it is well formed.</summary>
    public string? Problem()
    {
        if (Keys is null || KeyEnds is null || Times is null || Values is null || FieldNames is null) return "a column is missing";
        if (Keys.Length != KeyEnds.Length) return $"{Keys.Length} keys but {KeyEnds.Length} key ends";
        if (Values.Length != Times.Length * FieldNames.Length) return $"{Values.Length} values for {Times.Length} events of {FieldNames.Length} fields";
        var start = 0;
        foreach (var end in KeyEnds)
        {
            if (end <= start || end > Times.Length) return "key ends are not increasing within the events";
            start = end;
        }

        if (start != Times.Length) return "key ends do not cover every event";
        if ((Requests is null) != (EventRequests is null)) return "requests without their events' indices, or the other way round";
        if (EventRequests is not null)
        {
            if (EventRequests.Length != Times.Length) return $"{EventRequests.Length} request indices for {Times.Length} events";
            foreach (var r in EventRequests)
            {
                if (r < -1 || r >= Requests!.Length) return $"request index {r} is outside the item's {Requests!.Length} requests";
            }
        }

        return null;
    }
}

/// <summary>
/// A tagged request: the producer that first published it and the number it gave it (increasing per producer). A
/// request published again by another producer keeps its first tag, so the partitions recognise its events.
/// </summary>
[GenerateSerializer, Immutable, Alias("pipeline.request-tag")]
public readonly record struct RequestTag([property: Id(0)] Guid Producer, [property: Id(1)] long Tag);

/// <summary>
/// One key's share of a <see cref="PartitionBatch"/>, handed by the partition to the key's grain. <see cref="Delivery"/>
/// numbers the partition's applied items densely: a key applies a slice only if its delivery is newer than the last
/// one it stored, so a partition item redelivered after a crash is applied once per key. Identity for late events
/// and dead letters is (producer, sequence, <see cref="FirstIndex"/> + i). For a pipeline that feeds others,
/// <see cref="AdvanceTo"/> is its partition's watermark: after the events, the key's windows that end at or before it
/// fire (a slice without events only moves the watermark), so every key's windows close when the partition's do.
/// </summary>
[GenerateSerializer, Immutable, Alias("pipeline.key-slice")]
public sealed record KeySlice(
    [property: Id(0)] int Partition,
    [property: Id(1)] long Delivery,
    [property: Id(2)] Guid ProducerId,
    [property: Id(3)] long Sequence,
    [property: Id(4)] int FirstIndex,
    [property: Id(5)] string[] FieldNames,
    [property: Id(6)] long[] Times,
    [property: Id(7)] double[] Values,
    [property: Id(8)] long SentAtMs,
    [property: Id(9)] string? TraceParent = null,
    [property: Id(10)] long PublishedAtMs = 0,
    [property: Id(11)] long AdvanceTo = long.MinValue)
{
    /// <summary>Number of events in the slice.</summary>
    public int Count => Times.Length;
}

/// <summary>
/// What one upstream partition delivery brings one key of a chained pipeline: the upstream results it maps to, and the
/// upstream's watermark as that partition knew it. Applying the same contribution (same source window and revision)
/// twice changes nothing, so a redelivery after a crash neither loses nor doubles anything.
/// </summary>
/// <param name="Partition">The upstream partition.</param>
/// <param name="Delivery">The upstream partition's delivery.</param>
/// <param name="Keys">For each contribution, the upstream key that produced it.</param>
/// <param name="Results">The upstream results, in the order they were emitted.</param>
/// <param name="Watermark">The input's watermark: every upstream window ending at or before it has been delivered.</param>
[GenerateSerializer, Immutable, Alias("pipeline.contribution-slice")]
public sealed record ContributionSlice(
    [property: Id(0)] int Partition,
    [property: Id(1)] long Delivery,
    [property: Id(2)] string[] Keys,
    [property: Id(3)] Orleans.Pipeline.Windowing.WindowResult[] Results,
    [property: Id(4)] long Watermark);
