using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Windowing.Tests;

public class WindowPlanTests
{
    private static WindowingDefinition Definition() => new(
        WindowSpec.Tumbling(1_000),
        [AggregationSpec.Count(), AggregationSpec.Sum("v"), AggregationSpec.Max("w")],
        MaxOutOfOrdernessMs: 100);

    [Fact]
    public void Engines_of_one_definition_share_one_compiled_plan()
    {
        var definition = Definition();
        var plan = WindowPlan.For(definition);
        Assert.Same(plan, WindowPlan.For(definition));
        Assert.NotSame(plan, WindowPlan.For(definition, new AggregatorRegistry()));
        Assert.NotSame(plan, WindowPlan.For(Definition()));
        Assert.Equal(["v", "w"], plan.Fields);
        Assert.Equal(definition.Layout, plan.Layout);
        Assert.Equal(new WindowEngine(definition).OutputNames, plan.OutputNames);
    }

    [Fact]
    public void An_engine_from_a_plan_computes_what_an_engine_from_the_definition_computes()
    {
        var definition = Definition();
        var random = new Random(7);
        var fromDefinition = new WindowEngine(definition);
        var fromPlan = new WindowEngine(WindowPlan.For(definition));
        List<WindowResult> a = [], b = [];
        for (var i = 0; i < 5_000; i++)
        {
            var time = 10_000 + i * 3 - random.Next(0, 150);
            double[] values = [random.Next(100), random.NextDouble()];
            Assert.Equal(fromDefinition.Process(time, values, 0, a), fromPlan.Process(time, values, 0, b));
        }

        Assert.NotEmpty(a);
        Assert.Equal(a.Select(r => (r.Start, r.End, r.Kind, string.Join(",", r.Values))), b.Select(r => (r.Start, r.End, r.Kind, string.Join(",", r.Values))));
    }

    [Fact]
    public void An_invalid_definition_is_refused_when_its_plan_is_compiled()
    {
        var invalid = new WindowingDefinition(WindowSpec.Tumbling(1_000), []);
        var error = Assert.Throws<ArgumentException>(() => WindowPlan.For(invalid));
        Assert.Contains("at least one aggregation", error.Message);
        Assert.Throws<ArgumentException>(() => new WindowEngine(invalid));
    }

    [Fact]
    public void State_of_another_layout_is_refused_by_an_engine_built_from_a_plan()
    {
        var state = new WindowEngine(Definition()).State;
        var other = new WindowingDefinition(WindowSpec.Tumbling(2_000), [AggregationSpec.Count()]);
        var error = Assert.Throws<ArgumentException>(() => new WindowEngine(WindowPlan.For(other), state));
        Assert.Contains("layout", error.Message);
    }
}
