using Orleans.Configuration;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Tests.Scenarios;
using Orleans.Streams;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// Embedded mode under a flood far beyond what its grains take: publishing waits instead of failing, the queues stay
/// within their configured bound, and every accepted event ends up in exactly one window.
/// </summary>
public sealed class BackpressureTests
{
    private const int QueueCapacity = 1_000;
    private const int Keys = 4_000;
    private const int Events = 240_000;

    private static readonly PipelineDefinition Flood = ScenarioPipelines.Flood;

    /// <remarks>
    /// The client lets items run ahead, so the embedded queues' bound must push back. (The client's own bound pushing
    /// back is a scenario of every mode: Scenarios/PipelineScenarios.cs.)
    /// </remarks>
    [Fact]
    public async Task A_flood_the_client_lets_run_ahead_is_held_back_by_the_embedded_queues_bound_and_every_accepted_event_is_in_exactly_one_window()
    {
        const int unapplied = 10_000;
        await using var cluster = await PipelineCluster.StartAsync(configure: o =>
        {
            o.Pipelines.Add(Flood);
            o.EmbeddedQueueCapacity = QueueCapacity;
        });
        // Small items: the stream's cache (64 items per queue) then holds few events, and the flood (30,000 events per
        // queue) is far more than the cache and a queue (1,000) can take at once.
        await using var client = cluster.NewClient(new PipelineClientOptions { MaxBatchSize = 100, MaxUnappliedBatches = unapplied, Linger = TimeSpan.FromMilliseconds(5) });

        var perKey = await ScenarioPipelines.PublishFloodAsync(client, Keys, Events, seed: 17);

        await client.FlushAsync();
        Assert.Equal(Events, client.PublishedEvents);
        Assert.True(client.BackpressureWaits > 0, "the flood never had to wait: it did not exceed what the grains take");
        // The publisher sprayed 4,000 keys: the client's memory is bounded by partitions and items, not keys.
        const int batch = 100;
        Assert.True(client.PeakBufferedEvents <= batch, $"a partition buffer held {client.PeakBufferedEvents} events, more than an item ({batch})");

        var queues = new HashRingBasedStreamQueueMapper(new HashRingStreamQueueMapperOptions { TotalQueueCount = new PipelineClusterOptions().StreamQueues }, PipelineNames.StreamProvider).GetAllQueues();
        long waited = 0;
        foreach (var queue in queues)
        {
            var stats = await cluster.Client.GetGrain<IEmbeddedQueueGrain>(EmbeddedQueueAdapterFactory.QueueKey(PipelineNames.StreamProvider, queue)).GetStatsAsync();
            Assert.True(stats.PeakEvents <= QueueCapacity, $"queue {queue} held {stats.PeakEvents} events, more than its capacity {QueueCapacity}");
            waited += stats.WaitedEnqueues;
        }

        // With the client's bound out of the way, the queues' bound is what held the flood back.
        Assert.True(waited > 0, "no enqueue ever waited for room");

        // Flushed means stored in the queues; applied follows, and the client waits for it. Every accepted event in
        // exactly one window: per key, the window's count equals what was published, so nothing was lost and nothing
        // applied twice.
        await client.WaitUntilAppliedAsync();
        for (var key = 0; key < Keys; key++)
        {
            if (perKey[key] == 0) continue;
            var expected = perKey[key];
            var windows = await client.QueryAsync(Flood.Name, $"k{key}");
            Assert.Equal(expected, windows.AppliedEvents);
            var window = Assert.Single(windows.Open);
            Assert.Equal(expected, window.EventCount);
            Assert.Equal(expected, window.Values[1]);
        }
    }
}
