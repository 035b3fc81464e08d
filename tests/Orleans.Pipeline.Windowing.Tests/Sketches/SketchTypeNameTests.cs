using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Pipeline.Windowing.Sketches;
using Orleans.Serialization;

namespace Orleans.Pipeline.Windowing.Tests.Sketches;

/// <summary>
/// A window keeps its sketch as object state, so persisted state names the sketch's type. It must name it by its
/// alias, never by its namespace: then moving a sketch between namespaces leaves stored state readable.
/// </summary>
public sealed class SketchTypeNameTests
{
    private static readonly Serializer Serializer =
        new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();

    public static TheoryData<string, string> SketchTypes => new()
    {
        { nameof(HyperLogLogSketch), "pipeline.hll" },
        { nameof(QuantileSketch), "pipeline.ddsketch" },
    };

    [Theory]
    [MemberData(nameof(SketchTypes))]
    public void A_sketch_held_as_object_state_is_stored_under_its_alias_not_its_namespace(string type, string alias)
    {
        object sketch = type == nameof(HyperLogLogSketch) ? new HyperLogLogSketch() : new QuantileSketch();
        if (sketch is HyperLogLogSketch hll) hll.Add(1);
        if (sketch is QuantileSketch quantiles) quantiles.Add(1);

        var bytes = Serializer.SerializeToArray(sketch);
        var text = Encoding.UTF8.GetString(bytes);

        Assert.Contains(alias, text, StringComparison.Ordinal);
        Assert.DoesNotContain("Orleans.Pipeline", text, StringComparison.Ordinal);
        Assert.IsType(sketch.GetType(), Serializer.Deserialize<object>(bytes));
    }
}
