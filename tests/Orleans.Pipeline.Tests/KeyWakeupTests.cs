using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;
using Orleans.Runtime;
using static Orleans.Pipeline.Tests.Workload;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// Keys whose windows only time closes (here an idle timeout) leave word with their silo and are woken when due:
/// nothing keeps them in memory meanwhile, and a key that deactivated with open windows still closes them.
/// </summary>
public sealed class KeyWakeupTests
{
    private static readonly PipelineDefinition Idle = new("wake",
        new WindowingDefinition(WindowSpec.Tumbling(1_000), [AggregationSpec.Count()], IdleTimeoutMs: 3_000), Partitions: 2);

    [Fact]
    public async Task Keys_deactivated_with_open_windows_are_woken_and_close_them_by_their_idle_timeout()
    {
        // The pipeline's clock stands still until the keys are gone: no window can close before that.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.Add(Idle), time: clock);
        await using var client = cluster.NewClient();
        var finals = new ConcurrentDictionary<string, long>();
        await using var subscription = await client.SubscribeAsync(Idle.Name, batch =>
        {
            foreach (var result in batch.Results)
                if (result.Kind == ResultKind.Final) finals.AddOrUpdate(batch.Key, result.EventCount, (_, count) => count + result.EventCount);
            return Task.CompletedTask;
        });

        const int keys = 200;
        for (var i = 0; i < keys; i++)
            for (var n = 0; n <= i % 3; n++)
                await client.PublishAsync(Idle.Name, new PipelineEvent($"k{i}", 500 + i, new Dictionary<string, double>()));
        await client.WaitUntilAppliedAsync();

        // Every key grain goes, open windows and all: nothing holds them in memory.
        var management = cluster.Client.GetGrain<IManagementGrain>(0);
        await management.ForceActivationCollection(TimeSpan.Zero);
        var active = (await management.GetSimpleGrainStatistics())
            .Where(s => s.GrainType.Contains(nameof(Grains.KeyWindowGrain), StringComparison.Ordinal)).Sum(s => s.ActivationCount);
        Assert.Equal(0, active);
        Assert.Empty(finals);

        // Time passes: each woken key comes back, and closes its window once its idle timeout has passed since then.
        await WaitUntilAsync(() =>
        {
            clock.Advance(TimeSpan.FromMilliseconds(500));
            return Task.FromResult(finals.Count == keys);
        }, $"all {keys} keys closed their windows");
        for (var i = 0; i < keys; i++) Assert.Equal(i % 3 + 1, finals[$"k{i}"]);

        var windows = await cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(Idle.Name, "k2")).GetWindowsAsync();
        Assert.Empty(windows.Open);
        Assert.Equal(3, Assert.Single(windows.Closed).EventCount);
    }

    private static readonly PipelineDefinition Early = new("early",
        new WindowingDefinition(WindowSpec.Tumbling(3_600_000), [AggregationSpec.Count()], EarlyFiringIntervalMs: 200), Partitions: 1);

    [Fact]
    public async Task Early_firing_wakes_a_key_with_a_changed_open_window_once_per_interval_and_not_when_it_is_unchanged()
    {
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.Add(Early));
        await using var client = cluster.NewClient();
        var partials = new ConcurrentQueue<long>();
        await using var subscription = await client.SubscribeAsync(Early.Name, batch =>
        {
            foreach (var result in batch.Results)
                if (result.Kind == ResultKind.Partial) partials.Enqueue(result.EventCount);
            return Task.CompletedTask;
        });

        for (var i = 0; i < 3; i++) await client.PublishAsync(Early.Name, new PipelineEvent("key", 1_000 + i, new Dictionary<string, double>()));
        await client.WaitUntilAppliedAsync();
        await WaitUntilAsync(() => Task.FromResult(partials.Contains(3)), "a partial of the open window with its 3 events");

        // Unchanged since: no more partials, however many intervals pass.
        var seen = partials.Count;
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal(seen, partials.Count);

        await client.PublishAsync(Early.Name, new PipelineEvent("key", 2_000, new Dictionary<string, double>()));
        await client.WaitUntilAppliedAsync();
        await WaitUntilAsync(() => Task.FromResult(partials.Contains(4)), "a partial with the 4th event");
        Assert.Empty((await cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(Early.Name, "key")).GetWindowsAsync()).Closed);
    }
}
