namespace Orleans.Pipeline.Windowing.Aggregation;

/// <summary>
/// <c>top</c> (or <c>bottom</c>) with argument N: the N largest (smallest) values of a field per window, largest
/// (smallest) first, as outputs <c>{output}_1</c> … <c>{output}_N</c> (NaN where the window has fewer). Exact and
/// mergeable: the top N of a union are among the top N of each part. In a chained pipeline each output also carries
/// the key that contributed it (<see cref="WindowResult.Labels"/>): the N hottest keys by a measure.
/// </summary>
internal sealed class TopAggregate(int count, bool largest) : IMergeableAggregate<TopValues>
{
    /// <summary>The most values a top aggregation may keep.</summary>
    public const int MaxCount = 1_000;

    public IReadOnlyList<string> OutputNames(AggregationSpec spec) => Names(spec, count);

    public static string[] Names(AggregationSpec spec, int count) =>
        [.. Enumerable.Range(1, count).Select(i => $"{spec.OutputName}_{i}")];

    public TopValues Create() => new();

    public void Add(TopValues state, long eventTime, double value)
    {
        var values = state.Values;
        var at = values.BinarySearch(value, Order);
        at = at < 0 ? ~at : at;
        if (at >= count) return;
        values.Insert(at, value);
        if (values.Count > count) values.RemoveAt(values.Count - 1);
    }

    public void Merge(TopValues into, TopValues other)
    {
        foreach (var value in other.Values) Add(into, 0, value);
    }

    public void Result(TopValues state, Span<double> output)
    {
        for (var i = 0; i < count; i++) output[i] = i < state.Values.Count ? state.Values[i] : double.NaN;
    }

    /// <summary>Best first: descending for top, ascending for bottom.</summary>
    private Comparer<double> Order => largest ? Descending : Ascending;

    private static readonly Comparer<double> Descending = Comparer<double>.Create((a, b) => b.CompareTo(a));
    private static readonly Comparer<double> Ascending = Comparer<double>.Default;

    /// <summary>N from the spec's arguments, or 0 when they do not give one.</summary>
    public static int CountOf(AggregationSpec spec) =>
        spec.Arguments is [var n] && n >= 1 && n <= MaxCount && n == Math.Floor(n) ? (int)n : 0;

    /// <summary>Whether <paramref name="spec"/> is a top or bottom aggregation, and which.</summary>
    public static bool IsTop(AggregationSpec spec, out bool largest)
    {
        largest = string.Equals(spec.Function, "top", StringComparison.OrdinalIgnoreCase);
        return largest || string.Equals(spec.Function, "bottom", StringComparison.OrdinalIgnoreCase);
    }
}

/// <summary>A window's best values so far, best first.</summary>
[GenerateSerializer, Alias("pipeline.top-values")]
public sealed class TopValues
{
    [Id(0)] public List<double> Values { get; set; } = [];
}
