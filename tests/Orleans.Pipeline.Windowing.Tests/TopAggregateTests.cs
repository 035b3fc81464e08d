using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Windowing.Tests;

/// <summary><c>top</c> and <c>bottom</c> keep exactly the N best values of each window, on random traces.</summary>
public sealed class TopAggregateTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Top_and_bottom_equal_the_sorted_values_of_each_window(int seed)
    {
        var random = new Random(seed);
        var engine = new WindowEngine(new WindowingDefinition(WindowSpec.Hopping(100, 50),
            [AggregationSpec.Top("v", 3), AggregationSpec.Bottom("v", 2), AggregationSpec.Count()], MaxOutOfOrdernessMs: 1_000));
        var events = Enumerable.Range(0, 400).Select(_ => (Time: random.NextInt64(0, 1_000), Value: (double)random.Next(-50, 50))).ToList();
        var output = new List<WindowResult>();
        foreach (var (time, value) in events) engine.Process(time, [value], 0, output);
        engine.AdvanceWatermark(10_000, output);

        Assert.Equal(["top_v_1", "top_v_2", "top_v_3", "bottom_v_1", "bottom_v_2", "count"], engine.OutputNames);
        var finals = output.Where(r => r.Kind == ResultKind.Final).ToList();
        Assert.NotEmpty(finals);
        foreach (var window in finals)
        {
            var values = events.Where(e => e.Time >= window.Start && e.Time < window.End).Select(e => e.Value).ToList();
            var top = values.OrderDescending().Take(3).Concat(Enumerable.Repeat(double.NaN, 3)).Take(3);
            var bottom = values.Order().Take(2).Concat(Enumerable.Repeat(double.NaN, 2)).Take(2);
            Assert.Equal([.. top, .. bottom, values.Count], window.Values);
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData(0.0)]
    [InlineData(2.5)]
    [InlineData(1001.0)]
    public void Top_without_a_whole_count_from_1_to_1000_is_refused(double? count)
    {
        var spec = new AggregationSpec("top", "v", null, count is { } n ? [n] : null);
        var problem = Assert.Single(AggregatorRegistry.Default.Validate(spec));
        Assert.Contains("top needs one argument", problem);
    }
}
