using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// A slice whose apply throws half-way (a custom aggregate that fails on one value) leaves nothing of itself in the key:
/// the key is reloaded from its stored state, so a redelivery applies the slice whole or not at all.
/// </summary>
public sealed class HalfAppliedTests
{
    private static readonly PipelineDefinition Fragile = new("fragile",
        new WindowingDefinition(WindowSpec.Tumbling(1_000), [AggregationSpec.Count(), new AggregationSpec("fragile", "v")]), Partitions: 1);

    [Fact]
    public async Task An_apply_that_throws_half_way_leaves_the_key_as_it_was_before_the_slice()
    {
        var registry = new AggregatorRegistry().Register("fragile", new FailsOnThirteen());
        await using var cluster = await PipelineCluster.StartAsync(configure: o =>
        {
            o.Pipelines.Add(Fragile);
            o.Registry = registry;
            o.StateWriteInterval = TimeSpan.Zero; // every slice stored: "the state before the slice" is what storage has
        });
        var grain = cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey("fragile", "k"));
        var producer = Guid.NewGuid();
        KeySlice Slice(long delivery, long[] times, double[] values) => new(0, delivery, producer, delivery, 0, ["v"], times, values, 0);

        await grain.ApplyAsync(Slice(1, [10, 20], [1, 2]));
        await Assert.ThrowsAnyAsync<Exception>(() => grain.ApplyAsync(Slice(2, [30, 40, 50], [3, 13, 4])));

        var windows = await grain.GetWindowsAsync();
        Assert.Equal(2, windows.AppliedEvents);
        Assert.Equal(2, Assert.Single(windows.Open).EventCount);

        // Delivered again without the poison: applied once, whole.
        await grain.ApplyAsync(Slice(2, [30, 40, 50], [3, 12, 4]));
        windows = await grain.GetWindowsAsync();
        Assert.Equal((5L, 5L), (windows.AppliedEvents, Assert.Single(windows.Open).EventCount));
    }

    /// <summary>A sum that throws on 13.</summary>
    private sealed class FailsOnThirteen : IMergeableAggregate<Tally>
    {
        public Tally Create() => new();

        public void Add(Tally state, long eventTime, double value)
        {
            if (value == 13) throw new InvalidOperationException("13 is not accepted");
            state.Sum += value;
        }

        public void Merge(Tally into, Tally other) => into.Sum += other.Sum;

        public void Result(Tally state, Span<double> output) => output[0] = state.Sum;
    }
}

[GenerateSerializer]
public sealed class Tally
{
    [Id(0)] public double Sum { get; set; }
}
