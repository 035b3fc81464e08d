using Microsoft.Extensions.Time.Testing;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;
using Orleans.Runtime;
using static Orleans.Pipeline.Tests.Workload;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// An idle timeout is processing time at the key. Under overload a key's next events wait in the queue, and time
/// passing at the key is not the key being idle: the key measures idleness on a clock held back by how long its
/// partition's items waited between producer and key. Items that waited close nothing early; once items arrive
/// without waiting, the timeout closes the window as before. The pipeline's clock is a fake the test moves.
/// </summary>
public sealed class IdleUnderBacklogTests
{
    private static readonly PipelineDefinition Idle = new("idle-backlog",
        new WindowingDefinition(WindowSpec.Tumbling(2_000), [AggregationSpec.Count()], IdleTimeoutMs: 2_000), Partitions: 1);

    private static readonly string[] Fields = [];

    [Theory]
    [InlineData(4_500, false)] // the other key's items waited 4.5 s in the queue: the quiet key's window stays open
    [InlineData(0, true)] // the same 5 s with items that did not wait: the quiet key is idle and its window closes
    public async Task A_key_whose_partition_delivers_items_that_waited_in_the_queue_is_not_idle_for_that_wait(long waitedMs, bool closes)
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.Add(Idle), time: clock);
        var stream = cluster.Client.GetStreamProvider(PipelineNames.StreamProvider)
            .GetStream<PartitionBatch>(StreamId.Create(PipelineNames.EventsNamespace, PipelineNames.PartitionKey(Idle.Name, 0)));
        var partition = cluster.Client.GetGrain<IPartitionGrain>(PipelineNames.PartitionKey(Idle.Name, 0));
        var quiet = cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(Idle.Name, "quiet"));
        var producer = Guid.NewGuid();
        var sequence = 0L;
        long Now() => clock.GetUtcNow().ToUnixTimeMilliseconds();
        async Task SendAsync(string key, long eventTime, long sentAt)
        {
            await stream.OnNextAsync(new PartitionBatch(0, producer, ++sequence, Fields, [key], [1], [eventTime], [], sentAt));
            Assert.Equal(sequence, await partition.WaitForAppliedAsync(producer, sequence, TimeSpan.FromMinutes(1)));
        }

        await SendAsync("quiet", 1_000, Now());
        // 5 s pass at the keys (the timeout is 2 s) while the partition delivers another key's items, each sent
        // waitedMs before it arrives.
        for (var step = 0; step < 10; step++)
        {
            await SendAsync("busy", 1_000, Now() - waitedMs);
            clock.Advance(TimeSpan.FromMilliseconds(500));
        }

        if (closes)
        {
            await WaitUntilAsync(async () => (await quiet.GetWindowsAsync()).Open.Length == 0, "the quiet key's window closed by its idle timeout");
            return;
        }

        // The key's timer (every 500 ms of real time) has had its chances on the moved clock.
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        var windows = await quiet.GetWindowsAsync();
        Assert.Equal(1, Assert.Single(windows.Open).EventCount);

        // Its next event, which had waited as long, joins the same window and is not late.
        await SendAsync("quiet", 1_500, Now() - waitedMs);
        windows = await quiet.GetWindowsAsync();
        Assert.Equal((2L, 0L), (windows.AppliedEvents, windows.LateEvents));
        Assert.Equal(2, Assert.Single(windows.Open).EventCount);

        // Items that no longer wait: 3 s later the quiet key is idle and its window closes.
        await SendAsync("busy", 1_100, Now());
        clock.Advance(TimeSpan.FromSeconds(3));
        await SendAsync("busy", 1_101, Now());
        await WaitUntilAsync(async () => (await quiet.GetWindowsAsync()).Open.Length == 0, "the quiet key's window closed once its partition caught up");
    }
}
