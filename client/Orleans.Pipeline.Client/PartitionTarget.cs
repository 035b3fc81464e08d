using Orleans.Streams;

namespace Orleans.Pipeline.Client;

/// <summary>Where a partition's items go, and the partition grain that tells how far the producer's items are applied.</summary>
internal interface IPartitionTarget
{
    /// <summary>Stores one item in the partition's stream.</summary>
    Task SendAsync(PartitionBatch batch);

    /// <inheritdoc cref="IPartitionGrain.WaitForAppliedAsync"/>
    Task<long> WaitForAppliedAsync(Guid producer, long sequence, TimeSpan timeout);

    /// <inheritdoc cref="IPartitionGrain.AbandonAsync"/>
    Task AbandonAsync(Guid producer, long sequence);
}

/// <summary>A partition of a running cluster: its event stream and its partition grain.</summary>
internal sealed class ClusterPartitionTarget(IAsyncStream<PartitionBatch> stream, IPartitionGrain grain) : IPartitionTarget
{
    public Task SendAsync(PartitionBatch batch) => stream.OnNextAsync(batch);

    public Task<long> WaitForAppliedAsync(Guid producer, long sequence, TimeSpan timeout) => grain.WaitForAppliedAsync(producer, sequence, timeout);

    public Task AbandonAsync(Guid producer, long sequence) => grain.AbandonAsync(producer, sequence);
}
