using Orleans.Concurrency;

namespace Orleans.Pipeline;

/// <summary>
/// The grain of one (pipeline, key), keyed <c>pipeline/key</c> (<see cref="PipelineNames.StreamKey"/>): it owns the
/// key's window state. Its partition hands it its events (<see cref="ApplyAsync"/>); readers query it.
/// </summary>
public interface IKeyWindowGrain : IGrainWithStringKey
{
    /// <summary>The key's held and recently closed windows.</summary>
    [ReadOnly]
    Task<KeyWindows> GetWindowsAsync();

    /// <summary>
    /// Applies the key's slice of a partition item unless a slice with the same or a later delivery of that partition
    /// was applied before, and returns once the key's state (and, in cluster mode, its results) is stored. Returns what
    /// fired, or null. Called by the key's partition; not for applications.
    /// </summary>
    Task<ResultBatch?> ApplyAsync(KeySlice slice);

    /// <summary>
    /// For a key of a chained pipeline: takes upstream results and the input's watermark, and returns once stored.
    /// Returns what fired, or null. Called by the upstream's partitions; not for applications. Interleaves: slices
    /// arriving together are stored in one write.
    /// </summary>
    [AlwaysInterleave]
    Task<ResultBatch?> ApplyContributionsAsync(ContributionSlice slice);

    /// <summary>
    /// Lets processing time pass (idle timeouts, early firing, processing-time windows): closes what time has closed,
    /// stores it, and puts it on the live feed. Called by the silo when the key's word says it is due; not for applications.
    /// </summary>
    Task WakeAsync();
}

/// <summary>
/// The watermark of a pipeline that feeds others (key: the pipeline), from its partitions' watermarks: the lowest of
/// those heard from within the idle time (a partition quiet for longer no longer holds it back; when all are quiet,
/// the highest). Every upstream window ending at or before it has been delivered downstream.
/// </summary>
public interface IChainWatermarkGrain : IGrainWithStringKey
{
    /// <summary>A partition's watermark after a delivery; returns the pipeline's.</summary>
    Task<long> ReportAsync(int partition, long watermark);

    /// <summary>The pipeline's watermark.</summary>
    [ReadOnly]
    Task<long> GetAsync();
}

/// <summary>
/// The consumer of one partition stream of a pipeline, keyed <c>pipeline/partition</c> (<see cref="PipelineNames.PartitionKey"/>):
/// it orders and dedupes the partition's items per producer, splits them by key and hands each key grain its slice.
/// </summary>
public interface IPartitionGrain : IGrainWithStringKey
{
    /// <summary>
    /// Waits until every item of <paramref name="producer"/> up to <paramref name="sequence"/> has been applied by
    /// every key it holds (or given up as a dead letter), or until <paramref name="timeout"/> passes; returns the
    /// producer's applied sequence either way. Producers call it to keep a bounded number of items unapplied: the
    /// end-to-end backpressure.
    /// </summary>
    [AlwaysInterleave]
    Task<long> WaitForAppliedAsync(Guid producer, long sequence, TimeSpan timeout);

    /// <summary>
    /// The producer gave up sending item <paramref name="sequence"/> (it may or may not have been stored): its later
    /// items need not wait for it. If it turns up after all, it is applied once.
    /// </summary>
    Task AbandonAsync(Guid producer, long sequence);

    /// <summary>What the partition holds and remembers, for operators and tests.</summary>
    [ReadOnly]
    Task<PartitionStatus> GetStatusAsync();
}

/// <summary>A partition's bookkeeping.</summary>
/// <param name="Producers">Producers whose progress it remembers.</param>
/// <param name="HeldItems">Items waiting behind a gap in their producer's sequence.</param>
/// <param name="RememberedRequests">Tagged requests it remembers as applied (those that may still be published again).</param>
/// <param name="DuplicateItems">Items dropped as repeats.</param>
/// <param name="DuplicateRequestEvents">Events dropped because their request had been applied already (brought by another item).</param>
[GenerateSerializer, Immutable, Alias("pipeline.partition-status")]
public sealed record PartitionStatus(
    [property: Id(0)] int Producers,
    [property: Id(1)] int HeldItems,
    [property: Id(2)] int RememberedRequests,
    [property: Id(3)] long DuplicateItems,
    [property: Id(4)] long DuplicateRequestEvents);

/// <summary>The pipelines a silo runs, for clients (one per cluster: key 0).</summary>
public interface IPipelineCatalogGrain : IGrainWithIntegerKey
{
    /// <summary>Every pipeline definition.</summary>
    [ReadOnly]
    Task<PipelineDefinition[]> GetPipelinesAsync();
}

/// <summary>
/// A silo's recent-results log of one pipeline (key: the pipeline), for subscribers that fell behind the live feed
/// and for gateway subscribers that resume from a position. The log is bounded: it holds the latest results only,
/// and says from which position on. In embedded mode (one silo) it holds every result of the last
/// <c>RecentResults</c> batches; in cluster mode each silo has its own, and the results table is the full record.
/// </summary>
public interface IResultLogGrain : IGrainWithStringKey
{
    /// <summary>
    /// Up to <paramref name="max"/> batches after <paramref name="after"/>. With a positive <paramref name="wait"/>
    /// and nothing after that position yet, waits up to that long for the next results.
    /// </summary>
    [AlwaysInterleave]
    Task<ResultLogPage> ReadAsync(long after, int max, TimeSpan wait);
}
