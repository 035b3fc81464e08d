using Orleans.Runtime;
using static Orleans.Pipeline.Tests.Workload;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// A partition applies each producer's items in the order the producer numbered them, whatever order the stream
/// delivers them in (a durable queue redelivers a dead silo's items late): an item ahead of a gap waits for it;
/// a gap that never fills is given up after a timeout, and the missing item is still applied once if it turns up.
/// </summary>
public sealed class SequenceOrderTests
{
    private static readonly string[] Fields = PipelineCluster.Pipelines[0].Windowing.Fields.ToArray();

    private static PartitionBatch Batch(string key, Guid producer, long sequence, long time) =>
        PartitionBatch.ForKey(key, PipelineCluster.Pipelines[0].Partitions, producer, sequence, Fields, [time], [1, 1]);

    [Fact]
    public async Task A_batch_ahead_of_a_gap_waits_for_the_gap_and_the_producers_order_is_kept()
    {
        await using var cluster = await PipelineCluster.StartAsync();
        var (stream, grain) = Key(cluster, "ahead");
        var producer = Guid.NewGuid();

        await stream.OnNextAsync(Batch("ahead", producer, 1, 100));
        // Sequence 3 is far ahead in event time: applied before 2, it would make 2's event late.
        await stream.OnNextAsync(Batch("ahead", producer, 3, 1_000));
        await WaitUntilAsync(async () => (await grain.GetWindowsAsync()).AppliedEvents == 1, "the first batch applied");
        Assert.Equal(1, (await grain.GetWindowsAsync()).AppliedEvents);

        await stream.OnNextAsync(Batch("ahead", producer, 2, 150));
        await WaitUntilAsync(async () => (await grain.GetWindowsAsync()).AppliedEvents == 3, "all three batches applied");

        var windows = await grain.GetWindowsAsync();
        Assert.Equal((0L, 0L), (windows.LateEvents, windows.DuplicateBatches));
    }

    [Fact]
    public async Task A_gap_that_never_fills_is_given_up_after_the_timeout_and_the_straggler_is_applied_once()
    {
        await using var cluster = await PipelineCluster.StartAsync(sequenceGapTimeout: TimeSpan.FromSeconds(1));
        var (stream, grain) = Key(cluster, "gap");
        var producer = Guid.NewGuid();

        await stream.OnNextAsync(Batch("gap", producer, 1, 100));
        await stream.OnNextAsync(Batch("gap", producer, 3, 110));
        await WaitUntilAsync(async () => (await grain.GetWindowsAsync()).AppliedEvents == 2, "the held batch applied after the timeout");

        await stream.OnNextAsync(Batch("gap", producer, 2, 105));
        await stream.OnNextAsync(Batch("gap", producer, 2, 105));
        await stream.OnNextAsync(Batch("gap", producer, 4, 120));
        await WaitUntilAsync(async () => (await grain.GetWindowsAsync()).AppliedEvents == 4, "the straggler and the next batch applied");

        var windows = await grain.GetWindowsAsync();
        Assert.Equal(4, windows.AppliedEvents);
        Assert.Equal(4, windows.Open.Sum(w => w.EventCount));
    }

    private static (Streams.IAsyncStream<PartitionBatch> Stream, IKeyWindowGrain Grain) Key(PipelineCluster cluster, string key)
    {
        var partition = PipelineNames.PartitionOf(key, PipelineCluster.Pipelines[0].Partitions);
        var stream = cluster.Client.GetStreamProvider(PipelineNames.StreamProvider)
            .GetStream<PartitionBatch>(StreamId.Create(PipelineNames.EventsNamespace, PipelineNames.PartitionKey("tumbling", partition)));
        return (stream, cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey("tumbling", key)));
    }
}
