using System.Collections.Concurrent;
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
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.Add(Idle));
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

        await WaitUntilAsync(() => Task.FromResult(finals.Count == keys), $"all {keys} keys closed their windows");
        for (var i = 0; i < keys; i++) Assert.Equal(i % 3 + 1, finals[$"k{i}"]);

        var windows = await cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(Idle.Name, "k2")).GetWindowsAsync();
        Assert.Empty(windows.Open);
        Assert.Equal(3, Assert.Single(windows.Closed).EventCount);
    }
}
