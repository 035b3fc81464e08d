using Microsoft.Extensions.Time.Testing;
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
        // A fake clock that never moves: however slow the machine, the gap cannot time out.
        await using var cluster = await PipelineCluster.StartAsync(time: new FakeTimeProvider(DateTimeOffset.UtcNow));
        var (stream, grain) = Key(cluster, "ahead");
        var partition = Partition(cluster, "ahead");
        var producer = Guid.NewGuid();

        await stream.OnNextAsync(Batch("ahead", producer, 1, 100));
        // Sequence 3 is far ahead in event time: applied before 2, it would make 2's event late.
        await stream.OnNextAsync(Batch("ahead", producer, 3, 1_000));
        Assert.Equal(1L, await partition.WaitForAppliedAsync(producer, 1, TimeSpan.FromMinutes(1)));
        await WaitUntilAsync(async () => (await partition.GetStatusAsync()).HeldItems == 1, "item 3 held behind the gap");
        Assert.Equal(1, (await grain.GetWindowsAsync()).AppliedEvents);

        await stream.OnNextAsync(Batch("ahead", producer, 2, 150));
        Assert.Equal(3L, await partition.WaitForAppliedAsync(producer, 3, TimeSpan.FromMinutes(1)));

        var windows = await grain.GetWindowsAsync();
        Assert.Equal((0L, 0L), (windows.LateEvents, windows.DuplicateBatches));
    }

    [Fact]
    public async Task A_gap_that_never_fills_is_given_up_after_the_timeout_and_the_straggler_is_applied_once()
    {
        // The partition's clock is a fake: the gap times out when the test moves it, not when a loaded machine gets to it.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var cluster = await PipelineCluster.StartAsync(sequenceGapTimeout: TimeSpan.FromSeconds(1), time: clock);
        var (stream, grain) = Key(cluster, "gap");
        var partition = Partition(cluster, "gap");
        var producer = Guid.NewGuid();

        await stream.OnNextAsync(Batch("gap", producer, 1, 100));
        await stream.OnNextAsync(Batch("gap", producer, 3, 110));
        Assert.Equal(1L, await partition.WaitForAppliedAsync(producer, 1, TimeSpan.FromSeconds(30)));
        // Item 3 waits for 2 (no clock has moved).
        await WaitUntilAsync(async () => (await partition.GetStatusAsync()).HeldItems == 1, "item 3 held behind the gap");

        clock.Advance(TimeSpan.FromSeconds(1));
        // Applied once the gap timer (every 250 ms of real time) sees the timeout passed on the partition's clock.
        Assert.Equal(3L, await partition.WaitForAppliedAsync(producer, 3, TimeSpan.FromMinutes(1)));
        Assert.Equal(2, (await grain.GetWindowsAsync()).AppliedEvents);

        await stream.OnNextAsync(Batch("gap", producer, 2, 105));
        await stream.OnNextAsync(Batch("gap", producer, 2, 105));
        await stream.OnNextAsync(Batch("gap", producer, 4, 120));
        Assert.Equal(4L, await partition.WaitForAppliedAsync(producer, 4, TimeSpan.FromMinutes(1)));

        var windows = await grain.GetWindowsAsync();
        Assert.Equal(4, windows.AppliedEvents);
        Assert.Equal(4, windows.Open.Sum(w => w.EventCount));
    }

    [Fact]
    public async Task A_long_lived_producer_keeps_its_dedupe_mark_while_thousands_of_short_lived_producers_come_and_go()
    {
        await using var cluster = await PipelineCluster.StartAsync(sequenceGapTimeout: TimeSpan.FromSeconds(1));
        var (stream, grain) = Key(cluster, "lru");
        var partition = cluster.Client.GetGrain<IPartitionGrain>(PipelineNames.PartitionKey("tumbling", PipelineNames.PartitionOf("lru", PipelineCluster.Pipelines[0].Partitions)));
        var gateway = Guid.NewGuid(); // heard from first, and then all the time
        var time = 0L;

        await stream.OnNextAsync(Batch("lru", gateway, 1, ++time));
        var shortLived = 0;
        for (var round = 0; round < 5; round++)
        {
            // More producers than the partition remembers, each heard from once; the long-lived one keeps talking.
            for (var i = 0; i < 1_000; i++, shortLived++) await stream.OnNextAsync(Batch("lru", Guid.NewGuid(), 1, ++time));
            await stream.OnNextAsync(Batch("lru", gateway, round + 2, ++time));
            Assert.Equal((long)round + 2, await partition.WaitForAppliedAsync(gateway, round + 2, TimeSpan.FromSeconds(30)));
        }

        Assert.True(shortLived > 4_096);
        await stream.OnNextAsync(Batch("lru", gateway, 3, ++time)); // an old item redelivered: dropped, not applied again
        await stream.OnNextAsync(Batch("lru", gateway, 7, ++time));
        Assert.Equal(7L, await partition.WaitForAppliedAsync(gateway, 7, TimeSpan.FromSeconds(30)));
        var windows = await grain.GetWindowsAsync();
        Assert.Equal(shortLived + 7, windows.AppliedEvents + windows.LateEvents);
    }

    [Fact]
    public async Task An_item_its_producer_gave_up_leaves_no_gap_and_is_applied_once_if_it_was_stored_after_all()
    {
        // A gap timeout far beyond the test: only the producer's word can move the partition past the gap.
        await using var cluster = await PipelineCluster.StartAsync(sequenceGapTimeout: TimeSpan.FromMinutes(10));
        var (stream, grain) = Key(cluster, "abandoned");
        var partition = cluster.Client.GetGrain<IPartitionGrain>(PipelineNames.PartitionKey("tumbling", PipelineNames.PartitionOf("abandoned", PipelineCluster.Pipelines[0].Partitions)));
        var producer = Guid.NewGuid();

        await stream.OnNextAsync(Batch("abandoned", producer, 1, 100));
        await stream.OnNextAsync(Batch("abandoned", producer, 3, 110));
        await partition.AbandonAsync(producer, 2);
        await stream.OnNextAsync(Batch("abandoned", producer, 5, 130));
        await partition.AbandonAsync(producer, 4);
        Assert.Equal(5L, await partition.WaitForAppliedAsync(producer, 5, TimeSpan.FromSeconds(30)));

        // Item 2 had been stored after all, and is delivered (twice): applied once.
        await stream.OnNextAsync(Batch("abandoned", producer, 2, 105));
        await stream.OnNextAsync(Batch("abandoned", producer, 2, 105));
        await stream.OnNextAsync(Batch("abandoned", producer, 6, 140));
        Assert.Equal(6L, await partition.WaitForAppliedAsync(producer, 6, TimeSpan.FromSeconds(30)));
        var windows = await grain.GetWindowsAsync();
        Assert.Equal(5, windows.AppliedEvents + windows.LateEvents);
    }

    private static IPartitionGrain Partition(PipelineCluster cluster, string key) =>
        cluster.Client.GetGrain<IPartitionGrain>(PipelineNames.PartitionKey("tumbling", PipelineNames.PartitionOf(key, PipelineCluster.Pipelines[0].Partitions)));

    private static (Streams.IAsyncStream<PartitionBatch> Stream, IKeyWindowGrain Grain) Key(PipelineCluster cluster, string key)
    {
        var partition = PipelineNames.PartitionOf(key, PipelineCluster.Pipelines[0].Partitions);
        var stream = cluster.Client.GetStreamProvider(PipelineNames.StreamProvider)
            .GetStream<PartitionBatch>(StreamId.Create(PipelineNames.EventsNamespace, PipelineNames.PartitionKey("tumbling", partition)));
        return (stream, cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey("tumbling", key)));
    }
}
