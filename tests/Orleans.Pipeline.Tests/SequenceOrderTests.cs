using Orleans.Runtime;
using static Orleans.Pipeline.Tests.Workload;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// A key applies each producer's batches in the order the producer numbered them, whatever order the stream
/// delivers them in (a durable queue redelivers a dead silo's batches late): a batch ahead of a gap waits for it;
/// a gap that never fills is given up after a timeout, and the missing batch is still applied once if it turns up.
/// </summary>
public sealed class SequenceOrderTests
{
    private static readonly string[] Fields = PipelineCluster.Pipelines[0].Windowing.Fields.ToArray();

    private static EventBatch Batch(Guid producer, long sequence, long time) =>
        new("k", producer, sequence, Fields, [time], [1, 1], 0);

    [Fact]
    public async Task A_batch_ahead_of_a_gap_waits_for_the_gap_and_the_producers_order_is_kept()
    {
        await using var cluster = await PipelineCluster.StartAsync();
        var (stream, grain) = Key(cluster, "ahead");
        var producer = Guid.NewGuid();

        await stream.OnNextAsync(Batch(producer, 1, 100) with { Key = "ahead" });
        // Sequence 3 is far ahead in event time: applied before 2, it would make 2's event late.
        await stream.OnNextAsync(Batch(producer, 3, 1_000) with { Key = "ahead" });
        await WaitUntilAsync(async () => (await grain.GetWindowsAsync()).AppliedEvents == 1, "the first batch applied");
        Assert.Equal(1, (await grain.GetWindowsAsync()).AppliedEvents);

        await stream.OnNextAsync(Batch(producer, 2, 150) with { Key = "ahead" });
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

        await stream.OnNextAsync(Batch(producer, 1, 100) with { Key = "gap" });
        await stream.OnNextAsync(Batch(producer, 3, 110) with { Key = "gap" });
        await WaitUntilAsync(async () => (await grain.GetWindowsAsync()).AppliedEvents == 2, "the held batch applied after the timeout");

        await stream.OnNextAsync(Batch(producer, 2, 105) with { Key = "gap" });
        await stream.OnNextAsync(Batch(producer, 2, 105) with { Key = "gap" });
        await stream.OnNextAsync(Batch(producer, 4, 120) with { Key = "gap" });
        await WaitUntilAsync(async () => (await grain.GetWindowsAsync()).AppliedEvents == 4, "the straggler and the next batch applied");

        var windows = await grain.GetWindowsAsync();
        Assert.Equal(1, windows.DuplicateBatches);
        Assert.Equal(4, windows.Open.Sum(w => w.EventCount));
    }

    private static (Streams.IAsyncStream<EventBatch> Stream, IKeyWindowGrain Grain) Key(PipelineCluster cluster, string key)
    {
        var id = PipelineNames.StreamKey("tumbling", key);
        var stream = cluster.Client.GetStreamProvider(PipelineNames.StreamProvider).GetStream<EventBatch>(StreamId.Create(PipelineNames.EventsNamespace, id));
        return (stream, cluster.Client.GetGrain<IKeyWindowGrain>(id));
    }
}
