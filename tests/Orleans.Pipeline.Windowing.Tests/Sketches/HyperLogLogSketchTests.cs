using Microsoft.Extensions.DependencyInjection;
using Orleans.Pipeline.Windowing.Sketches;
using Orleans.Serialization;
using Xunit.Abstractions;

namespace Orleans.Pipeline.Windowing.Tests.Sketches;

public sealed class HyperLogLogSketchTests(ITestOutputHelper output)
{
    private const int Seeds = 50;

    [Fact]
    public void An_empty_sketch_estimates_zero()
    {
        var sketch = new HyperLogLogSketch();
        Assert.True(sketch.IsSparse);
        Assert.Equal(0, sketch.Estimate());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(100)]
    [InlineData(HyperLogLogSketch.SparseLimit)]
    public void The_estimate_is_exact_while_there_are_at_most_sparse_limit_distinct_values(int distinct)
    {
        var random = new Random(distinct);
        var sketch = new HyperLogLogSketch();
        for (var i = 0; i < distinct; i++)
        {
            sketch.Add(i * 1.5 - 40);
            if (random.Next(3) == 0) sketch.Add(random.Next(i + 1) * 1.5 - 40); // a repeat of a value already added
            Assert.Equal(i + 1, sketch.Estimate());
        }

        Assert.True(sketch.IsSparse);
    }

    [Fact]
    public void The_sketch_turns_dense_on_the_first_distinct_value_above_the_sparse_limit()
    {
        var sketch = new HyperLogLogSketch();
        for (var i = 0; i < HyperLogLogSketch.SparseLimit; i++) sketch.Add(i);
        sketch.Add(0); // a repeat keeps it sparse
        Assert.True(sketch.IsSparse);

        sketch.Add(HyperLogLogSketch.SparseLimit);

        Assert.False(sketch.IsSparse);
        var estimate = sketch.Estimate();
        Assert.InRange(estimate, (HyperLogLogSketch.SparseLimit + 1) * 0.95, (HyperLogLogSketch.SparseLimit + 1) * 1.05);
    }

    [Fact]
    public void Negative_zero_and_zero_count_as_one_value()
    {
        var sketch = new HyperLogLogSketch();
        sketch.Add(0.0);
        sketch.Add(-0.0);
        sketch.Add(double.NegativeZero);
        Assert.Equal(1, sketch.Estimate());

        sketch.Add(double.Epsilon);
        sketch.Add(-double.Epsilon);
        Assert.Equal(3, sketch.Estimate());
    }

    [Theory]
    [InlineData(1_000)]
    [InlineData(10_000)]
    [InlineData(100_000)]
    [InlineData(1_000_000)]
    public void The_estimate_is_within_four_standard_errors_on_fifty_seeds(int cardinality)
    {
        const double bound = 4 * HyperLogLogSketch.StandardError;
        var failures = new List<string>();
        var worst = 0.0;
        var sumOfSquares = 0.0;
        for (var seed = 0; seed < Seeds; seed++)
        {
            var sketch = new HyperLogLogSketch();
            foreach (var value in DistinctValues(seed, cardinality)) sketch.Add(value);

            var estimate = sketch.Estimate();
            var error = (estimate - cardinality) / cardinality;
            sumOfSquares += error * error;
            worst = Math.Max(worst, Math.Abs(error));
            if (Math.Abs(error) > bound)
                failures.Add(FormattableString.Invariant($"seed {seed} ({Generator(seed)}): estimate {estimate} for {cardinality} distinct, relative error {error:P2}"));
        }

        output.WriteLine(FormattableString.Invariant(
            $"cardinality {cardinality}: {Seeds} seeds, max |relative error| {worst:P2}, RMS {Math.Sqrt(sumOfSquares / Seeds):P2}, bound {bound:P2}"));
        Assert.True(failures.Count == 0, $"beyond 4 standard errors ({bound:P2}): " + string.Join("; ", failures));
    }

    [Theory]
    [InlineData(100)]
    [InlineData(5_000)]
    public void Duplicates_leave_the_estimate_unchanged(int distinct)
    {
        var values = DistinctValues(seed: 7, distinct).ToArray();
        var once = new HyperLogLogSketch();
        foreach (var value in values) once.Add(value);

        var random = new Random(distinct);
        var repeated = values.SelectMany(value => Enumerable.Repeat(value, 1 + random.Next(5))).ToArray();
        random.Shuffle(repeated);
        var many = new HyperLogLogSketch();
        foreach (var value in repeated) many.Add(value);

        Assert.Equal(once.IsSparse, many.IsSparse);
        Assert.Equal(once.Estimate(), many.Estimate());
    }

    [Theory]
    [InlineData(0, 0, 0)] // empty + empty
    [InlineData(10, 20, 5)] // sparse + sparse, union sparse
    [InlineData(150, 150, 44)] // sparse + sparse, union exactly at the limit
    [InlineData(200, 200, 50)] // sparse + sparse, union dense
    [InlineData(100, 5_000, 60)] // sparse + dense
    [InlineData(5_000, 100, 60)] // dense + sparse
    [InlineData(5_000, 8_000, 1_000)] // dense + dense
    [InlineData(0, 5_000, 0)] // empty + dense
    [InlineData(300, 0, 0)] // dense + empty
    public void Merging_gives_the_same_estimate_as_adding_everything_to_one_sketch(int leftCount, int rightCount, int overlap)
    {
        var all = DistinctValues(seed: leftCount + rightCount, leftCount + rightCount - overlap).ToArray();
        var left = all[..leftCount];
        var right = all[(leftCount - overlap)..];

        var single = Sketch(all);
        var leftIntoRight = Sketch(right);
        leftIntoRight.Merge(Sketch(left));
        var rightIntoLeft = Sketch(left);
        rightIntoLeft.Merge(Sketch(right));

        Assert.Equal(single.IsSparse, leftIntoRight.IsSparse);
        Assert.Equal(single.IsSparse, rightIntoLeft.IsSparse);
        Assert.Equal(single.Estimate(), leftIntoRight.Estimate());
        Assert.Equal(single.Estimate(), rightIntoLeft.Estimate());
        if (single.IsSparse) Assert.Equal(all.Length, single.Estimate());
    }

    [Fact]
    public void Merging_many_partial_sketches_equals_one_sketch()
    {
        var values = DistinctValues(seed: 3, 20_000).ToArray();
        var random = new Random(3);
        var parts = Enumerable.Range(0, 16).Select(_ => new HyperLogLogSketch()).ToArray();
        // Skewed split: some parts stay sparse, others go dense.
        foreach (var value in values) parts[Math.Min(15, (int)(random.NextDouble() * random.NextDouble() * 17))].Add(value);
        Assert.Contains(parts, part => part.IsSparse);
        Assert.Contains(parts, part => !part.IsSparse);

        var merged = new HyperLogLogSketch();
        foreach (var part in parts) merged.Merge(part);

        Assert.Equal(Sketch(values).Estimate(), merged.Estimate());
    }

    [Theory]
    [InlineData(50)]
    [InlineData(5_000)]
    public void Merging_neither_changes_the_other_sketch_nor_shares_storage_with_it(int count)
    {
        var other = Sketch(DistinctValues(seed: 11, count));
        var before = other.Estimate();
        var wasSparse = other.IsSparse;

        var into = new HyperLogLogSketch();
        into.Merge(other);
        foreach (var value in DistinctValues(seed: 12, 10_000)) into.Add(value);

        Assert.Equal(wasSparse, other.IsSparse);
        Assert.Equal(before, other.Estimate());
    }

    [Theory]
    [InlineData(50)]
    [InlineData(5_000)]
    public void Merging_a_sketch_with_itself_changes_nothing(int count)
    {
        var sketch = Sketch(DistinctValues(seed: 13, count));
        var before = sketch.Estimate();
        sketch.Merge(sketch);
        Assert.Equal(before, sketch.Estimate());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(10)]
    [InlineData(HyperLogLogSketch.SparseLimit)]
    [InlineData(HyperLogLogSketch.SparseLimit + 1)]
    [InlineData(50_000)]
    public void A_serialization_round_trip_keeps_the_estimate_and_the_representation(int count)
    {
        var original = Sketch(DistinctValues(seed: 21, count));

        var copy = SketchSerializer.RoundTrip(original, out var size);

        output.WriteLine($"{count} distinct: {size} bytes ({(original.IsSparse ? "sparse" : "dense")})");
        Assert.Equal(original.IsSparse, copy.IsSparse);
        Assert.Equal(original.Estimate(), copy.Estimate());

        // The copy keeps working like the original: same state after the same further values.
        foreach (var value in DistinctValues(seed: 22, 300))
        {
            original.Add(value);
            copy.Add(value);
        }

        Assert.Equal(original.IsSparse, copy.IsSparse);
        Assert.Equal(original.Estimate(), copy.Estimate());
    }

    [Fact]
    public void Serialized_it_takes_about_eight_bytes_per_hash_while_sparse_and_about_four_kibibytes_dense()
    {
        var sparse10 = Sketch(DistinctValues(seed: 31, 10));
        var sparseFull = Sketch(DistinctValues(seed: 32, HyperLogLogSketch.SparseLimit));
        var dense = Sketch(DistinctValues(seed: 33, 100_000));

        SketchSerializer.RoundTrip(sparse10, out var sparse10Size);
        SketchSerializer.RoundTrip(sparseFull, out var sparseFullSize);
        SketchSerializer.RoundTrip(dense, out var denseSize);

        output.WriteLine($"serialized HLL: sparse with 10 values {sparse10Size} bytes; sparse with {HyperLogLogSketch.SparseLimit} values {sparseFullSize} bytes; dense {denseSize} bytes");
        Assert.InRange(sparse10Size, 10 * sizeof(ulong), 10 * sizeof(ulong) + 16);
        Assert.InRange(sparseFullSize, HyperLogLogSketch.SparseLimit * sizeof(ulong), HyperLogLogSketch.SparseLimit * sizeof(ulong) + 16);
        Assert.InRange(denseSize, HyperLogLogSketch.RegisterCount, HyperLogLogSketch.RegisterCount + 16);
        Assert.True(sparseFullSize < denseSize);
    }

    private static HyperLogLogSketch Sketch(IEnumerable<double> values)
    {
        var sketch = new HyperLogLogSketch();
        foreach (var value in values) sketch.Add(value);
        return sketch;
    }

    private static string Generator(int seed) => (seed % 3) switch
    {
        0 => "random doubles in a random binade",
        1 => "consecutive integers",
        _ => "consecutive cents",
    };

    /// <summary>
    /// <paramref name="count"/> values that are distinct by construction, from one of three shapes chosen by the seed:
    /// doubles with pseudo-random mantissas in a random binade (a bijection of the index, so no repeats), consecutive
    /// integers from a random start (identifiers), or consecutive multiples of 0.01 (prices).
    /// </summary>
    private static IEnumerable<double> DistinctValues(int seed, int count)
    {
        var random = new Random(seed);
        var key1 = (ulong)random.NextInt64() | 1;
        var key2 = (ulong)random.NextInt64() | 1;
        var exponent = (ulong)(1023 + random.Next(-20, 40)) << 52;
        var start = random.NextInt64(1L << 40);
        for (var i = 0; i < count; i++)
        {
            yield return (seed % 3) switch
            {
                0 => BitConverter.UInt64BitsToDouble(exponent | Permute52((ulong)i, key1, key2)),
                1 => start + i,
                _ => (start % 1_000_000_000 + i) * 0.01,
            };
        }
    }

    /// <summary>A keyed bijection on 52-bit integers: odd multiplications and xorshifts mod 2^52.</summary>
    private static ulong Permute52(ulong x, ulong key1, ulong key2)
    {
        const ulong mask = (1UL << 52) - 1;
        x = (x * key1) & mask;
        x ^= x >> 23;
        x = (x * key2) & mask;
        x ^= x >> 29;
        x = (x * key1) & mask;
        x ^= x >> 26;
        return x;
    }
}

/// <summary>Round trips values through the Orleans serializer, as state is persisted and shipped between silos.</summary>
internal static class SketchSerializer
{
    private static readonly Serializer Instance =
        new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();

    public static T RoundTrip<T>(T value, out int size)
        where T : class
    {
        var bytes = Instance.SerializeToArray(value);
        size = bytes.Length;
        return Instance.Deserialize<T>(bytes) ?? throw new InvalidOperationException("Deserialized to null.");
    }
}
