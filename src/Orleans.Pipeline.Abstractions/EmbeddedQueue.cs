using Orleans.Concurrency;

namespace Orleans.Pipeline;

/// <summary>
/// One queue of the embedded mode's event stream, held in the silo's memory: bounded by a number of events, and an
/// enqueue that finds it full waits for room (it fails only after a long wait, and the producer retries). This is
/// the embedded transport's backpressure; its plumbing, not for applications.
/// </summary>
public interface IEmbeddedQueueGrain : IGrainWithStringKey
{
    /// <summary>Appends the items, waiting while the queue is full.</summary>
    Task EnqueueAsync(QueuedEvents items);

    /// <summary>Takes up to <paramref name="max"/> entries, oldest first.</summary>
    [AlwaysInterleave]
    Task<QueuedEvents[]> DequeueAsync(int max);

    /// <summary>How full the queue is and has been.</summary>
    [AlwaysInterleave]
    Task<EmbeddedQueueStats> GetStatsAsync();
}

/// <summary>A queue's events now, the most it ever held, its capacity, and enqueues that had to wait for room.</summary>
[GenerateSerializer, Immutable, Alias("pipeline.embedded-queue-stats")]
public sealed record EmbeddedQueueStats(
    [property: Id(0)] long Events,
    [property: Id(1)] long PeakEvents,
    [property: Id(2)] long Capacity,
    [property: Id(3)] long WaitedEnqueues);

/// <summary>Events of one stream enqueued together, numbered by the queue.</summary>
[GenerateSerializer, Immutable, Alias("pipeline.queued-events")]
public sealed record QueuedEvents(
    [property: Id(0)] string StreamNamespace,
    [property: Id(5)] string StreamKey,
    [property: Id(1)] object[] Events,
    [property: Id(2)] int EventCount,
    [property: Id(3)] Dictionary<string, object>? RequestContext,
    [property: Id(4)] long Sequence = 0);
