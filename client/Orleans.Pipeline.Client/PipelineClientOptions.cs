namespace Orleans.Pipeline.Client;

/// <summary>Tuning of a <see cref="PipelineClient"/>.</summary>
public sealed class PipelineClientOptions
{
    /// <summary>
    /// Events per partition item at most (one stream item, however many keys it holds). Items are cut when full or
    /// after <see cref="Linger"/>, so they stay small while the cluster keeps up and grow while it is behind: with
    /// many keys per partition, a larger item gives each key more events per call. How full is full adapts per
    /// partition between 1,024 and this, starting at 8,192: halved when the sender waited more than 8 s for the
    /// partition to apply its earlier items (a fan-out to very many new keys), doubled when it waited under 2 s.
    /// </summary>
    public int MaxBatchSize { get; set; } = 32_768;

    /// <summary>
    /// Items per partition sent but not yet applied by every key they hold; beyond it, sending waits until the
    /// partition catches up, and publishers wait once the partition's buffer is full: backpressure from the key
    /// grains to the caller of <c>PublishAsync</c>, with memory bounded by partitions × (this + 1) × <see cref="MaxBatchSize"/>.
    /// </summary>
    public int MaxUnappliedBatches { get; set; } = 2;

    /// <summary>How long a partly filled item waits for more events before it is sent anyway.</summary>
    public TimeSpan Linger { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Attempts per item for errors other than the cluster being busy or unreachable for a while (time-outs, full
    /// queues, transient database errors), which are retried with the same sequence until the item is stored.
    /// </summary>
    public int MaxAttempts { get; set; } = 6;

    /// <summary>First retry delay; doubled per attempt, at most 2 s.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(100);
}
