namespace Orleans.Pipeline;

/// <summary>
/// The stream item: a batch of events of one key, stored column-wise for a compact encoding. One item is one
/// delivery and one state write in the key's grain. <see cref="ProducerId"/> and <see cref="Sequence"/> identify the
/// batch: a grain applies each (producer, sequence) at most once, so producers retry without creating duplicates.
/// </summary>
/// <param name="Key">The key all events share.</param>
/// <param name="ProducerId">The publishing client's id.</param>
/// <param name="Sequence">Increases with every batch a producer sends; a retry reuses it.</param>
/// <param name="FieldNames">Names of the value columns.</param>
/// <param name="Times">Event time of each event, Unix milliseconds.</param>
/// <param name="Values">Row-major values, <c>Times.Length × FieldNames.Length</c>; NaN marks a missing value.</param>
/// <param name="SentAtMs">When the producer sent the batch (processing time), for end-to-end latency.</param>
[GenerateSerializer, Immutable, Alias("pipeline.event-batch")]
public sealed record EventBatch(
    [property: Id(0)] string Key,
    [property: Id(1)] Guid ProducerId,
    [property: Id(2)] long Sequence,
    [property: Id(3)] string[] FieldNames,
    [property: Id(4)] long[] Times,
    [property: Id(5)] double[] Values,
    [property: Id(6)] long SentAtMs)
{
    /// <summary>Number of events in the batch.</summary>
    public int Count => Times.Length;
}
