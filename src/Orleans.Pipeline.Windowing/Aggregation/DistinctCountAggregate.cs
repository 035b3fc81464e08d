using Orleans.Pipeline.Windowing.Sketches;

namespace Orleans.Pipeline.Windowing.Aggregation;

/// <summary>
/// <c>distinct</c>: the number of distinct values of a field, estimated by a <see cref="HyperLogLogSketch"/> per window.
/// Exact up to <see cref="HyperLogLogSketch.SparseLimit"/> distinct values; beyond that within a relative standard
/// error of <see cref="HyperLogLogSketch.StandardError"/> (≈ 1.6%). <c>-0.0</c> and <c>0.0</c> count as one value.
/// A window with no values gives 0.
/// </summary>
internal sealed class DistinctCountAggregate : IMergeableAggregate<HyperLogLogSketch>
{
    public static readonly DistinctCountAggregate Instance = new();

    private DistinctCountAggregate()
    {
    }

    public HyperLogLogSketch Create() => new();

    public void Add(HyperLogLogSketch state, long eventTime, double value) => state.Add(value);

    public void Merge(HyperLogLogSketch into, HyperLogLogSketch other) => into.Merge(other);

    public void Result(HyperLogLogSketch state, Span<double> output) => output[0] = state.Estimate();
}
