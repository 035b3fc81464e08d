using Orleans.Pipeline.Windowing.Sketches;

namespace Orleans.Pipeline.Windowing.Aggregation;

/// <summary>
/// <c>quantile</c>: one output per level, named <c>{output}_p50</c>, <c>{output}_p99_9</c>, …, estimated by a
/// <see cref="QuantileSketch"/> per window. Each output is within relative error
/// <see cref="QuantileSketch.RelativeAccuracy"/> (1%) of the value of rank <c>⌊level·(n − 1)⌋</c> among the window's
/// n values (see <see cref="QuantileSketch.Quantile"/> for the exceptions); NaN for a window with no values.
/// </summary>
/// <param name="levels">Quantile levels in [0, 1], in output order; copied.</param>
internal sealed class QuantileAggregate(double[] levels) : IMergeableAggregate<QuantileSketch>
{
    private readonly double[] _levels = CheckLevels(levels);

    public IReadOnlyList<string> OutputNames(AggregationSpec spec) =>
        Array.ConvertAll(_levels, level => spec.OutputName + "_" + AggregationSpec.QuantileSuffix(level));

    public QuantileSketch Create() => new();

    public void Add(QuantileSketch state, long eventTime, double value) => state.Add(value);

    public void Merge(QuantileSketch into, QuantileSketch other) => into.Merge(other);

    public void Result(QuantileSketch state, Span<double> output)
    {
        for (var i = 0; i < _levels.Length; i++) output[i] = state.Quantile(_levels[i]);
    }

    private static double[] CheckLevels(double[] levels)
    {
        ArgumentNullException.ThrowIfNull(levels);
        foreach (var level in levels)
            if (!(level >= 0 && level <= 1))
                throw new ArgumentOutOfRangeException(nameof(levels), level, "Quantile levels must be in [0, 1].");
        return (double[])levels.Clone();
    }
}
