using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Tests.Chaining;

/// <summary>
/// The two halves of exactly-once along a chain: a feeding key hands out what a delivery fired again when that
/// delivery comes again (its partition stopped after the key stored it, before the results went downstream), and a
/// chained key takes the same contributions twice, or an older revision after a newer one, without changing.
/// </summary>
public sealed class ChainRedeliveryTests
{
    private static readonly ChainPlan Plan = ChainPlan.GlobalMax("redelivery");

    [Fact]
    public async Task A_feeding_key_hands_out_what_a_delivery_fired_again_when_the_delivery_comes_again()
    {
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.AddRange([Plan.Upstream, Plan.Downstream]));
        const string key = "auction-1";
        var grain = cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(Plan.Upstream.Name, key));
        var partition = PipelineNames.PartitionOf(key, ChainPlan.Partitions);
        var producer = Guid.NewGuid();
        KeySlice Slice(long delivery, long[] times, double[] prices, long advanceTo) =>
            new(partition, delivery, producer, delivery, 0, ["price"], times, prices, 0, AdvanceTo: advanceTo);

        var first = await grain.ApplyAsync(Slice(1, [100, 200], [7, 9], advanceTo: 1_000));
        var again = await grain.ApplyAsync(Slice(1, [100, 200], [7, 9], advanceTo: 1_000));

        var fired = Assert.Single(first!.Results);
        Assert.Equal((0L, 1_000L, ResultKind.Final, 9.0), (fired.Start, fired.End, fired.Kind, fired.Values[0]));
        Assert.False(first.Replayed);
        Assert.True(again!.Replayed);
        Assert.Equal(first.Results.Select(r => r.ToString()), again.Results.Select(r => r.ToString()));
        var windows = await grain.GetWindowsAsync();
        Assert.Equal((2L, 1L), (windows.AppliedEvents, windows.DuplicateBatches)); // applied once

        // The next delivery fires nothing: a repeat of it hands out nothing either (not the earlier delivery's results).
        Assert.Null(await grain.ApplyAsync(Slice(2, [1_100], [3], advanceTo: 1_100)));
        Assert.Null(await grain.ApplyAsync(Slice(2, [1_100], [3], advanceTo: 1_100)));
    }

    [Fact]
    public async Task A_feeding_key_sends_its_last_results_downstream_again_when_it_comes_back()
    {
        // Results a key stored but that never went downstream (its partition stopped first): the key hands them over
        // when it is next activated.
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.AddRange([Plan.Upstream, Plan.Downstream]));
        const string key = "auction-2";
        var grain = cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(Plan.Upstream.Name, key));
        var downstream = cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(Plan.Downstream.Name, ChainInput.AllKey));
        var partition = PipelineNames.PartitionOf(key, ChainPlan.Partitions);
        Assert.NotNull(await grain.ApplyAsync(new KeySlice(partition, 1, Guid.NewGuid(), 1, 0, ["price"], [100, 200], [7, 9], 0, AdvanceTo: 1_000)));
        Assert.Empty((await downstream.GetWindowsAsync()).Open); // called directly: nothing went downstream

        await cluster.Client.GetGrain<Orleans.Runtime.IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);
        Assert.Equal(2, (await grain.GetWindowsAsync()).AppliedEvents); // back, from its stored state

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        WindowResult? held;
        while ((held = (await downstream.GetWindowsAsync()).Open.SingleOrDefault()) is null && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.NotNull(held);
        Assert.Equal((0L, 1_000L, 9.0), (held.Start, held.End, held.Values[0]));
    }

    [Fact]
    public async Task A_chained_key_takes_the_same_contributions_twice_and_older_revisions_late_without_changing()
    {
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.AddRange([Plan.Upstream, Plan.Downstream]));
        var grain = cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(Plan.Downstream.Name, ChainInput.AllKey));
        WindowResult Result(int revision, double max) => new(0, 1_000, revision, revision == 1 ? ResultKind.Final : ResultKind.Update, 1, [max], 1_000);

        var fired = await grain.ApplyContributionsAsync(new ContributionSlice(0, 1, ["a", "b"], [Result(1, 5), Result(1, 8)], Watermark: 1_000));
        var repeated = await grain.ApplyContributionsAsync(new ContributionSlice(0, 1, ["a", "b"], [Result(1, 5), Result(1, 8)], Watermark: 1_000));
        var revised = await grain.ApplyContributionsAsync(new ContributionSlice(1, 2, ["a"], [Result(2, 11)], Watermark: 1_000));
        var stale = await grain.ApplyContributionsAsync(new ContributionSlice(0, 1, ["a", "b"], [Result(1, 5), Result(1, 8)], Watermark: 1_000));

        Assert.Equal((ResultKind.Final, 8.0), (Assert.Single(fired!.Results).Kind, fired.Results[0].Values[0]));
        Assert.Null(repeated);
        Assert.Equal((ResultKind.Update, 11.0), (Assert.Single(revised!.Results).Kind, revised.Results[0].Values[0]));
        Assert.Null(stale);
        var closed = Assert.Single((await grain.GetWindowsAsync()).Closed);
        Assert.Equal((2, 11.0), (closed.Revision, closed.Values[0]));
    }
}
