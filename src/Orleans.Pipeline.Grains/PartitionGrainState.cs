namespace Orleans.Pipeline.Grains;

/// <summary>What a partition persists: its producers' progress, held items and deliveries assigned but not yet confirmed.</summary>
[GenerateSerializer, Alias("pipeline.partition-grain-state")]
internal sealed class PartitionGrainState
{
    /// <summary>The last delivery number handed out; deliveries number applied items densely.</summary>
    [Id(0)] public long LastDelivery { get; set; }

    /// <summary>
    /// Per producer, the sequence up to which every item has been applied (or given up as missing); an item at or
    /// below it is a repeat unless it is in <see cref="Skipped"/>.
    /// </summary>
    [Id(1)] public Dictionary<Guid, long> LastSequence { get; set; } = [];

    /// <summary>Producers, least recently heard from first, to bound <see cref="LastSequence"/>.</summary>
    [Id(2)] public List<Guid> ProducerOrder { get; set; } = [];

    /// <summary>Items that arrived ahead of a gap in their producer's sequence, held until the gap fills.</summary>
    [Id(3)] public List<HeldItem> Held { get; set; } = [];

    /// <summary>Per producer, sequences given up as missing; applied if they turn up after all.</summary>
    [Id(4)] public Dictionary<Guid, List<long>> Skipped { get; set; } = [];

    /// <summary>
    /// Deliveries assigned to items whose keys may have applied them but which were not confirmed: a redelivered
    /// item gets the same delivery number again, so keys that stored it drop the repeat.
    /// </summary>
    [Id(5)] public List<AssignedDelivery> Assigned { get; set; } = [];

    /// <summary>Items dropped as repeats.</summary>
    [Id(6)] public long DuplicateItems { get; set; }

    /// <summary>
    /// Per producer, sequences ahead of its progress that the producer gave up sending: when the producer's progress
    /// reaches one, it moves past it at once instead of waiting out the gap timeout (and applies it once if it turns
    /// up after all, like a skipped one).
    /// </summary>
    [Id(7)] public Dictionary<Guid, List<long>> Abandoned { get; set; } = [];

    /// <summary>
    /// Per producer that first published them, the tagged requests (ascending) whose events this partition applied
    /// and that may still be published again (at or above the producer's <see cref="PartitionBatch.OpenFrom"/>): an
    /// item bringing one of them again has those events removed.
    /// </summary>
    [Id(8)] public Dictionary<Guid, List<long>> AppliedRequests { get; set; } = [];

    /// <summary>Events dropped because their request had been applied already (brought by another item).</summary>
    [Id(9)] public long DuplicateRequestEvents { get; set; }

    /// <summary>
    /// For a pipeline that feeds others: the partition's watermark (highest event time applied − the pipeline's
    /// out-of-orderness). Its keys' windows close when it passes them.
    /// </summary>
    [Id(10)] public long Watermark { get; set; } = long.MinValue;

    /// <summary>
    /// For a pipeline that feeds others: keys that may hold windows the watermark has not passed yet. When the
    /// watermark passes a key's first due window end, the key is told.
    /// </summary>
    [Id(11)] public Dictionary<string, OpenKey> OpenKeys { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// A key of a feeding pipeline with windows still open: no window of it ends before <see cref="FirstDue"/> (a lower
/// bound: telling it early is harmless, late is not), and none after <see cref="LastEnd"/>.
/// </summary>
[GenerateSerializer, Alias("pipeline.open-key")]
internal readonly record struct OpenKey([property: Id(0)] long FirstDue, [property: Id(1)] long LastEnd);

/// <summary>An item held behind a sequence gap, and when it arrived (Unix milliseconds).</summary>
[GenerateSerializer, Immutable, Alias("pipeline.held-item")]
internal sealed record HeldItem([property: Id(0)] PartitionBatch Item, [property: Id(1)] long ArrivedAtMs);

/// <summary>A delivery number given to a producer's item.</summary>
[GenerateSerializer, Immutable, Alias("pipeline.assigned-delivery")]
internal sealed record AssignedDelivery([property: Id(0)] Guid Producer, [property: Id(1)] long Sequence, [property: Id(2)] long Delivery);
