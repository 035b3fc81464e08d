using Orleans.Core.Internal;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;
using static Orleans.Pipeline.Tests.Workload;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// A key that moves to a silo whose clock is two minutes ahead (here: the same silo after its clock jumped, the key
/// deactivated in between) must not count the skew as idle time: its open window stays open and later events of
/// it are not late.
/// </summary>
public sealed class ClockSkewTests
{
    private static readonly PipelineDefinition Idle = new("idle",
        new WindowingDefinition(WindowSpec.Tumbling(60_000), [AggregationSpec.Count()], IdleTimeoutMs: 30_000), Partitions: 1);

    [Fact]
    public async Task A_key_reactivated_under_a_clock_two_minutes_ahead_does_not_take_the_skew_for_idle_time()
    {
        var clock = new SkewedClock();
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.Add(Idle), time: clock);
        await using var client = cluster.NewClient();
        var grain = cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey("idle", "skewed"));

        await client.PublishAsync("idle", new PipelineEvent("skewed", 1_000, new Dictionary<string, double>()));
        await client.WaitUntilAppliedAsync();
        await grain.Cast<IGrainManagementExtension>().DeactivateOnIdle();

        clock.Skew = TimeSpan.FromMinutes(2);
        var windows = await grain.GetWindowsAsync(); // activates it, under the skewed clock
        Assert.Equal(1, windows.AppliedEvents);
        // Let its close-windows timer (every second for this pipeline) tick a few times.
        await Task.Delay(TimeSpan.FromSeconds(3));

        await client.PublishAsync("idle", new PipelineEvent("skewed", 2_000, new Dictionary<string, double>()));
        await client.WaitUntilAppliedAsync();
        windows = await grain.GetWindowsAsync();
        Assert.Equal((2L, 0L), (windows.AppliedEvents, windows.LateEvents));
        Assert.Equal(2, Assert.Single(windows.Open).EventCount);
    }

    private sealed class SkewedClock : TimeProvider
    {
        public TimeSpan Skew { get; set; }

        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + Skew;
    }
}
