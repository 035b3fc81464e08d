using System.Globalization;

namespace Orleans.Pipeline.Windowing.Aggregation;

/// <summary>
/// One aggregation of a pipeline: a function applied to a numeric field of every event in a window.
/// </summary>
/// <param name="Function">
/// <c>count</c>, <c>sum</c>, <c>min</c>, <c>max</c>, <c>avg</c>, <c>first</c>, <c>last</c>, <c>distinct</c>, <c>quantile</c>, <c>top</c>, <c>bottom</c>,
/// or the name of a custom aggregator registered in <see cref="AggregatorRegistry"/>.
/// </param>
/// <param name="Field">The numeric field it reads; <c>null</c> only for <c>count</c>, which then counts events.</param>
/// <param name="Name">Output name; defaults to <c>function_field</c> (or <c>count</c>).</param>
/// <param name="Arguments">
/// Function arguments: how many values <c>top</c> and <c>bottom</c> keep (one output each); the quantile levels for <c>quantile</c> (e.g. 0.5, 0.99), one output each; the relative
/// accuracy as a second-level option is fixed by the function (see the README).
/// </param>
[GenerateSerializer, Immutable, Alias("pipeline.aggregation-spec")]
public sealed record AggregationSpec(
    [property: Id(0)] string Function,
    [property: Id(1)] string? Field = null,
    [property: Id(2)] string? Name = null,
    [property: Id(3)] double[]? Arguments = null)
{
    /// <summary>The output name used when <see cref="Name"/> is not given.</summary>
    public string OutputName => Name ?? (Field is null ? Function : $"{Function}_{Field}");

    public static AggregationSpec Count(string? field = null, string? name = null) => new("count", field, name);
    public static AggregationSpec Sum(string field, string? name = null) => new("sum", field, name);
    public static AggregationSpec Min(string field, string? name = null) => new("min", field, name);
    public static AggregationSpec Max(string field, string? name = null) => new("max", field, name);
    public static AggregationSpec Avg(string field, string? name = null) => new("avg", field, name);

    /// <summary>The <paramref name="count"/> largest values of <paramref name="field"/> (in a chained pipeline: with the keys that contributed them).</summary>
    public static AggregationSpec Top(string field, int count, string? name = null) => new("top", field, name, [count]);

    /// <summary>The <paramref name="count"/> smallest values of <paramref name="field"/> (in a chained pipeline: with the keys that contributed them).</summary>
    public static AggregationSpec Bottom(string field, int count, string? name = null) => new("bottom", field, name, [count]);
    public static AggregationSpec First(string field, string? name = null) => new("first", field, name);
    public static AggregationSpec Last(string field, string? name = null) => new("last", field, name);
    public static AggregationSpec Distinct(string field, string? name = null) => new("distinct", field, name);

    public static AggregationSpec Quantiles(string field, params double[] levels) => new("quantile", field, null, levels);

    /// <summary>Formats a quantile level as an output suffix: 0.5 → <c>p50</c>, 0.999 → <c>p99_9</c>.</summary>
    public static string QuantileSuffix(double level) =>
        "p" + (level * 100).ToString("0.###", CultureInfo.InvariantCulture).Replace('.', '_');
}
