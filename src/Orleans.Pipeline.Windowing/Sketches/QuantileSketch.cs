namespace Orleans.Pipeline.Windowing.Sketches;

/// <summary>
/// A DDSketch: a quantile sketch with relative accuracy <see cref="RelativeAccuracy"/> over the doubles added to it.
/// </summary>
/// <remarks>
/// <para>
/// A value <c>x</c> with <c>|x| ≥ </c><see cref="MinIndexableValue"/> goes into bucket <c>i = ⌈log_γ |x|⌉</c>,
/// γ = (1 + α) / (1 − α), of the positive or the negative store by its sign; smaller magnitudes (and zeros) are
/// counted as zero. Bucket <c>i</c> covers <c>(γ^(i−1), γ^i]</c> and is represented by <c>2γ^i / (γ + 1)</c>, which is
/// within relative error α of every value in it.
/// </para>
/// <para>
/// Contract of <see cref="Quantile"/>: for q in [0, 1] and <c>n = </c><see cref="Count"/> values, the exact answer
/// is the value of 0-based rank <c>⌊q·(n − 1)⌋</c> in sorted order, <c>x</c>; the estimate <c>e</c> satisfies
/// <c>|e − x| ≤ α·|x|</c> (up to floating-point rounding in the last bits). Ranks 0 and n − 1 (so q = 0 and q = 1)
/// return the exact minimum and maximum, and every estimate is clamped into [min, max]. The guarantee does not hold
/// for values below <see cref="MinIndexableValue"/> in magnitude (estimated as 0), and it does not hold for
/// quantiles that fall into collapsed buckets: each store keeps at most <see cref="MaxBinsPerStore"/> buckets
/// (a range of 1.0202^2048 ≈ 6·10^17 between the smallest and the largest magnitude) and, beyond that, folds its
/// lowest-magnitude buckets into the lowest one it keeps. Quantiles among the larger magnitudes stay accurate.
/// </para>
/// <para>
/// The state is a pure function of the multiset of values added (collapsing included), so <see cref="Merge"/> gives
/// exactly the quantiles that adding all values to one sketch gives. Buckets are stored densely (an offset and a
/// <c>long[]</c> of counts spanning exactly the occupied range), so a sketch serializes to about a byte per bucket.
/// </para>
/// </remarks>
[GenerateSerializer, Alias("pipeline.ddsketch")]
public sealed class QuantileSketch
{
    /// <summary>Relative accuracy α of every quantile estimate (outside collapsed buckets).</summary>
    public const double RelativeAccuracy = 0.01;

    /// <summary>Magnitudes below this are counted as zero.</summary>
    public const double MinIndexableValue = 1e-300;

    /// <summary>Buckets each store (positive, negative) keeps at most.</summary>
    public const int MaxBinsPerStore = 2048;

    /// <summary>γ = (1 + α) / (1 − α).</summary>
    internal const double Gamma = (1 + RelativeAccuracy) / (1 - RelativeAccuracy);

    private static readonly double LogGamma = Math.Log(Gamma);

    [Id(0)]
    private readonly BinStore _positive = new();

    [Id(1)]
    private readonly BinStore _negative = new();

    [Id(2)]
    private long _zeroCount;

    /// <summary>Smallest value added; meaningless while empty.</summary>
    [Id(3)]
    private double _min;

    /// <summary>Largest value added; meaningless while empty.</summary>
    [Id(4)]
    private double _max;

    /// <summary>An empty sketch.</summary>
    public QuantileSketch()
    {
    }

    /// <summary>Values added (merged ones included).</summary>
    public long Count => _zeroCount + _positive.Total + _negative.Total;

    /// <summary>Adds one value. NaN is not allowed (the engine never passes it).</summary>
    public void Add(double value)
    {
        if (double.IsNaN(value)) throw new ArgumentException("NaN cannot be added to a quantile sketch.", nameof(value));

        UpdateMinMax(value, value);
        if (value >= MinIndexableValue) _positive.Add(Index(value), 1);
        else if (value <= -MinIndexableValue) _negative.Add(Index(-value), 1);
        else _zeroCount++;
    }

    /// <summary>
    /// Folds <paramref name="other"/> into this sketch; afterwards it answers exactly as a sketch that was given every
    /// value of both. <paramref name="other"/> is not changed.
    /// </summary>
    public void Merge(QuantileSketch other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Count == 0) return;
        if (ReferenceEquals(other, this))
        {
            // Doubling every count: the same multiset twice.
            _positive.Double();
            _negative.Double();
            _zeroCount *= 2;
            return;
        }

        UpdateMinMax(other._min, other._max);
        _positive.Merge(other._positive);
        _negative.Merge(other._negative);
        _zeroCount += other._zeroCount;
    }

    /// <summary>
    /// The <paramref name="q"/>-quantile: an estimate of the value of rank <c>⌊q·(Count − 1)⌋</c> (0-based, ascending)
    /// within relative error <see cref="RelativeAccuracy"/> (see the type's remarks for the exceptions); NaN when the
    /// sketch is empty. Does not change the sketch.
    /// </summary>
    /// <param name="q">Level in [0, 1].</param>
    public double Quantile(double q)
    {
        if (!(q >= 0 && q <= 1)) throw new ArgumentOutOfRangeException(nameof(q), q, "Quantile level must be in [0, 1].");

        var count = Count;
        if (count == 0) return double.NaN;

        var rank = (long)Math.Floor(q * (count - 1));
        if (rank <= 0) return _min;
        if (rank >= count - 1) return _max;

        double estimate;
        var negatives = _negative.Total;
        if (rank < negatives)
        {
            // Ascending order starts with the largest magnitudes of the negative store.
            estimate = -Value(_negative.IndexAtRank(negatives - 1 - rank));
        }
        else if (rank < negatives + _zeroCount)
        {
            estimate = 0;
        }
        else
        {
            estimate = Value(_positive.IndexAtRank(rank - negatives - _zeroCount));
        }

        return Math.Clamp(estimate, _min, _max);
    }

    private void UpdateMinMax(double min, double max)
    {
        if (Count == 0)
        {
            _min = min;
            _max = max;
            return;
        }

        if (min < _min) _min = min;
        if (max > _max) _max = max;
    }

    /// <summary>Bucket of a magnitude ≥ <see cref="MinIndexableValue"/>: ⌈log_γ m⌉ (infinity goes to the top bucket).</summary>
    private static int Index(double magnitude) =>
        double.IsPositiveInfinity(magnitude)
            ? (int)Math.Ceiling(Math.Log(double.MaxValue) / LogGamma)
            : (int)Math.Ceiling(Math.Log(magnitude) / LogGamma);

    /// <summary>Representative magnitude of bucket <paramref name="index"/>: 2γ^i / (γ + 1).</summary>
    private static double Value(int index) => 2 * Math.Exp(index * LogGamma) / (Gamma + 1);
}

/// <summary>
/// Bucket counts of one sign of a <see cref="QuantileSketch"/>, stored densely: <c>_counts[k]</c> is the count of
/// bucket <c>_offset + k</c>. The array spans exactly the occupied buckets (its first and last entries are non-zero),
/// never more than <see cref="QuantileSketch.MaxBinsPerStore"/>; when a new bucket would make it longer, the lowest
/// buckets are folded into the lowest one kept.
/// </summary>
[GenerateSerializer, Alias("pipeline.ddsketch.bins")]
internal sealed class BinStore
{
    [Id(0)]
    private int _offset;

    [Id(1)]
    private long[] _counts = [];

    [Id(2)]
    private long _total;

    /// <summary>Sum of all counts.</summary>
    public long Total => _total;

    /// <summary>Adds <paramref name="count"/> to bucket <paramref name="index"/> (or to the collapsed lowest bucket).</summary>
    public void Add(int index, long count)
    {
        if (_counts.Length == 0)
        {
            _offset = index;
            _counts = [count];
            _total = count;
            return;
        }

        var high = _offset + _counts.Length - 1;
        if (index > high)
        {
            // Keep [index − MaxBins + 1, index] at most; everything lower collapses into its lowest bucket.
            var low = Math.Max(_offset, index - QuantileSketch.MaxBinsPerStore + 1);
            Resize(low, index);
        }
        else if (index < _offset)
        {
            var low = Math.Max(index, high - QuantileSketch.MaxBinsPerStore + 1);
            if (low < _offset) Resize(low, high);
            index = Math.Max(index, _offset);
        }

        _counts[index - _offset] += count;
        _total += count;
    }

    /// <summary>Adds every bucket of <paramref name="other"/>; <paramref name="other"/> is not changed.</summary>
    public void Merge(BinStore other)
    {
        var counts = other._counts;
        // Highest bucket first, so the range is set (and any collapse done) once rather than bucket by bucket.
        for (var k = counts.Length - 1; k >= 0; k--)
            if (counts[k] != 0) Add(other._offset + k, counts[k]);
    }

    /// <summary>Doubles every count (merging a store into itself).</summary>
    public void Double()
    {
        for (var k = 0; k < _counts.Length; k++) _counts[k] *= 2;
        _total *= 2;
    }

    /// <summary>The bucket holding the value of 0-based rank <paramref name="rank"/> in ascending magnitude.</summary>
    public int IndexAtRank(long rank)
    {
        var seen = 0L;
        for (var k = 0; k < _counts.Length; k++)
        {
            seen += _counts[k];
            if (seen > rank) return _offset + k;
        }

        throw new ArgumentOutOfRangeException(nameof(rank), rank, $"Rank beyond the store's {_total} values.");
    }

    /// <summary>Reallocates to span exactly [<paramref name="low"/>, <paramref name="high"/>], folding buckets below <paramref name="low"/> into it.</summary>
    private void Resize(int low, int high)
    {
        var counts = new long[high - low + 1];
        for (var k = 0; k < _counts.Length; k++)
        {
            var index = _offset + k;
            if (index > high) break;
            counts[Math.Max(index, low) - low] += _counts[k];
        }

        _offset = low;
        _counts = counts;
    }
}
