using Orleans.Pipeline.Windowing.Sketches;
using Xunit.Abstractions;

namespace Orleans.Pipeline.Windowing.Tests.Sketches;

public sealed class QuantileSketchTests(ITestOutputHelper output)
{
    private const double Alpha = QuantileSketch.RelativeAccuracy;

    /// <summary>Room for rounding in the last bits of log/exp: the bound is α, not α + 1e-9·α.</summary>
    private const double RoundingSlack = 1e-9;

    private const int SeedsPerDistribution = 25;

    private static readonly double[] Levels =
        [0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.25, 1.0 / 3, 0.5, 2.0 / 3, 0.75, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999, 1];

    public static TheoryData<string> Distributions =>
    [
        "uniform", "lognormal", "exponential", "normal with negatives", "with zeros", "wide range 1e-3..1e9 both signs",
        "small integers", "all negative", "constant",
    ];

    [Fact]
    public void An_empty_sketch_gives_nan_at_every_level()
    {
        var sketch = new QuantileSketch();
        Assert.Equal(0, sketch.Count);
        foreach (var level in Levels) Assert.True(double.IsNaN(sketch.Quantile(level)), $"level {level}");
    }

    [Theory]
    [InlineData(-0.01)]
    [InlineData(1.01)]
    [InlineData(double.NaN)]
    public void Levels_outside_zero_to_one_are_rejected(double level)
    {
        var sketch = new QuantileSketch();
        sketch.Add(1);
        Assert.Throws<ArgumentOutOfRangeException>(() => sketch.Quantile(level));
    }

    [Theory]
    [InlineData(42.5)]
    [InlineData(-3e-7)]
    [InlineData(0.0)]
    public void Every_quantile_of_a_single_value_is_that_value(double value)
    {
        var sketch = new QuantileSketch();
        sketch.Add(value);
        Assert.Equal(1, sketch.Count);
        foreach (var level in Levels) Assert.Equal(value, sketch.Quantile(level));
    }

    [Theory]
    [MemberData(nameof(Distributions))]
    public void Quantiles_are_within_the_relative_accuracy_of_the_exact_rank_value_on_many_seeds(string distribution)
    {
        var failures = new List<string>();
        var worst = 0.0;
        var checks = 0;
        for (var seed = 0; seed < SeedsPerDistribution; seed++)
        {
            var values = Generate(distribution, seed, count: 1 + seed * 197);
            var sketch = Sketch(values);
            Array.Sort(values);
            Assert.Equal(values.Length, sketch.Count);

            foreach (var level in Levels)
            {
                var exact = values[(long)Math.Floor(level * (values.Length - 1))];
                var estimate = sketch.Quantile(level);
                var error = exact == 0 ? Math.Abs(estimate) : Math.Abs(estimate - exact) / Math.Abs(exact);
                checks++;
                if (exact != 0) worst = Math.Max(worst, error);
                if (exact == 0 ? estimate != 0 : error > Alpha * (1 + RoundingSlack))
                    failures.Add(FormattableString.Invariant($"seed {seed}, n {values.Length}, q {level}: exact {exact:R}, estimate {estimate:R}, relative error {error:G4}"));
            }
        }

        output.WriteLine(FormattableString.Invariant($"{distribution}: {checks} quantiles checked, max relative error {worst:G4} (α = {Alpha})"));
        Assert.True(failures.Count == 0, $"{distribution}: beyond relative accuracy {Alpha}: " + string.Join("; ", failures.Take(20)));
    }

    [Theory]
    [MemberData(nameof(Distributions))]
    public void The_quantile_at_zero_is_the_exact_minimum_and_at_one_the_exact_maximum(string distribution)
    {
        for (var seed = 0; seed < 5; seed++)
        {
            var values = Generate(distribution, seed, count: 2 + seed * 300);
            var sketch = Sketch(values);
            Assert.Equal(values.Min(), sketch.Quantile(0));
            Assert.Equal(values.Max(), sketch.Quantile(1));
        }
    }

    [Theory]
    [MemberData(nameof(Distributions))]
    public void Merging_gives_the_same_quantiles_as_adding_everything_to_one_sketch(string distribution)
    {
        var values = Generate(distribution, seed: 5, count: 4_000);
        var random = new Random(5);
        var parts = Enumerable.Range(0, 7).Select(_ => new QuantileSketch()).ToArray();
        foreach (var value in values) parts[random.Next(parts.Length)].Add(value);

        var merged = new QuantileSketch();
        foreach (var part in parts) merged.Merge(part);

        AssertSameQuantiles(Sketch(values), merged);
    }

    [Fact]
    public void Merging_gives_the_same_quantiles_when_one_side_has_only_negatives_or_zeros()
    {
        var negatives = Generate("all negative", seed: 1, count: 500);
        var zeros = new double[40];
        var positives = Generate("lognormal", seed: 2, count: 500);

        var merged = Sketch(zeros);
        merged.Merge(Sketch(positives));
        merged.Merge(Sketch(negatives));
        merged.Merge(new QuantileSketch());

        AssertSameQuantiles(Sketch([.. positives, .. zeros, .. negatives]), merged);
    }

    [Fact]
    public void Merging_does_not_change_the_other_sketch()
    {
        var other = Sketch(Generate("normal with negatives", seed: 3, count: 1_000));
        var before = Levels.Select(other.Quantile).ToArray();

        var into = Sketch(Generate("wide range 1e-3..1e9 both signs", seed: 4, count: 1_000));
        into.Merge(other);
        foreach (var value in Generate("uniform", seed: 5, count: 1_000)) into.Add(value);

        Assert.Equal(1_000, other.Count);
        Assert.Equal(before, Levels.Select(other.Quantile).ToArray());
    }

    [Fact]
    public void Merging_a_sketch_with_itself_counts_every_value_twice()
    {
        var values = Generate("with zeros", seed: 6, count: 1_000);
        var sketch = Sketch(values);
        sketch.Merge(sketch);
        AssertSameQuantiles(Sketch([.. values, .. values]), sketch);
    }

    [Fact]
    public void Bins_are_capped_per_store_and_quantiles_above_the_collapsed_range_stay_accurate()
    {
        // 1e-30 .. 1e30 spans about 7 000 buckets per sign, well over the cap.
        var random = new Random(8);
        var values = Enumerable.Range(0, 20_000)
            .Select(_ => (random.Next(2) == 0 ? -1 : 1) * Math.Pow(10, random.NextDouble() * 60 - 30))
            .ToArray();
        var sketch = Sketch(values);
        var copy = SketchSerializer.RoundTrip(sketch, out var size);
        output.WriteLine($"DDSketch, 20 000 values over 60 decades: {size} bytes");
        Assert.InRange(size, 0, 2 * QuantileSketch.MaxBinsPerStore * 3);

        Array.Sort(values);
        // Buckets of magnitude above max / γ^(MaxBins − 1) are never collapsed (with a one-bucket margin).
        var keptAbove = values.Max(Math.Abs) / Math.Pow(QuantileSketch.Gamma, QuantileSketch.MaxBinsPerStore - 2);
        var checkedCount = 0;
        for (var level = 0.0; level <= 1; level += 0.001)
        {
            var exact = values[(long)Math.Floor(level * (values.Length - 1))];
            if (exact < keptAbove) continue;
            checkedCount++;
            var estimate = sketch.Quantile(level);
            Assert.True(Math.Abs(estimate - exact) <= Alpha * Math.Abs(exact) * (1 + RoundingSlack), $"q {level}: exact {exact:R}, estimate {estimate:R}");
            Assert.Equal(estimate, copy.Quantile(level));
        }

        Assert.InRange(checkedCount, 100, 1_000);
        Assert.Equal(values[0], sketch.Quantile(0));
        Assert.Equal(values[^1], sketch.Quantile(1));
    }

    [Fact]
    public void Merging_gives_the_same_quantiles_as_one_sketch_when_buckets_collapse()
    {
        var random = new Random(9);
        var small = Enumerable.Range(0, 3_000).Select(_ => Math.Pow(10, random.NextDouble() * 20 - 30)).ToArray();
        var large = Enumerable.Range(0, 3_000).Select(_ => Math.Pow(10, random.NextDouble() * 20 + 10)).ToArray();
        var mixed = Enumerable.Range(0, 3_000).Select(_ => -Math.Pow(10, random.NextDouble() * 60 - 30)).ToArray();

        var single = Sketch([.. small, .. large, .. mixed]);
        var smallThenLarge = Sketch(small);
        smallThenLarge.Merge(Sketch(large));
        smallThenLarge.Merge(Sketch(mixed));
        var largeThenSmall = Sketch(large);
        largeThenSmall.Merge(Sketch(mixed));
        largeThenSmall.Merge(Sketch(small));

        AssertSameQuantiles(single, smallThenLarge);
        AssertSameQuantiles(single, largeThenSmall);
    }

    [Theory]
    [InlineData("empty")]
    [InlineData("lognormal")]
    [InlineData("with zeros")]
    [InlineData("uniform from zero")]
    [InlineData("all negative")]
    public void A_serialization_round_trip_keeps_the_count_and_the_quantiles(string distribution)
    {
        double[] values = distribution switch
        {
            "empty" => [],
            "uniform from zero" => [0, .. Generate("uniform", seed: 10, count: 500)], // minimum 0 (the default value) survives
            _ => Generate(distribution, seed: 10, count: 1_000),
        };
        var original = Sketch(values);

        var copy = SketchSerializer.RoundTrip(original, out var size);

        output.WriteLine($"{distribution}: {values.Length} values, {size} bytes");
        AssertSameQuantiles(original, copy);

        // The copy keeps working like the original.
        foreach (var value in Generate("wide range 1e-3..1e9 both signs", seed: 11, count: 300))
        {
            original.Add(value);
            copy.Add(value);
        }

        AssertSameQuantiles(original, copy);
    }

    [Fact]
    public void Serialized_it_takes_about_a_byte_or_two_per_occupied_bucket()
    {
        var values = Generate("lognormal", seed: 12, count: 1_000);
        var sketch = Sketch(values);

        SketchSerializer.RoundTrip(sketch, out var size);

        var buckets = Math.Ceiling(Math.Log(values.Max()) / Math.Log(QuantileSketch.Gamma)) -
            Math.Ceiling(Math.Log(values.Min()) / Math.Log(QuantileSketch.Gamma)) + 1;
        output.WriteLine($"serialized DDSketch: 1000 log-normal values (μ 0, σ 1) spanning {buckets} buckets: {size} bytes");
        Assert.InRange(size, buckets, 2 * buckets + 64);
    }

    private static QuantileSketch Sketch(IEnumerable<double> values)
    {
        var sketch = new QuantileSketch();
        foreach (var value in values) sketch.Add(value);
        return sketch;
    }

    private static void AssertSameQuantiles(QuantileSketch expected, QuantileSketch actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i <= 1000; i++)
        {
            var level = i / 1000.0;
            Assert.Equal(expected.Quantile(level), actual.Quantile(level));
        }
    }

    /// <summary><paramref name="count"/> values of the named distribution, reproducible from <paramref name="seed"/>.</summary>
    private static double[] Generate(string distribution, int seed, int count)
    {
        var random = new Random(seed * 1_000_003 + distribution.Length);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        double Sign() => random.Next(2) == 0 ? -1 : 1;

        var values = new double[count];
        var constant = Math.Exp(Normal() * 5);
        for (var i = 0; i < count; i++)
        {
            values[i] = distribution switch
            {
                "uniform" => random.NextDouble() * 1000,
                "lognormal" => Math.Exp(Normal()),
                "exponential" => -Math.Log(1 - random.NextDouble()) * 50,
                "normal with negatives" => Normal() * 100 + 20,
                "with zeros" => random.Next(3) == 0 ? 0 : Sign() * Math.Exp(Normal() * 2),
                "wide range 1e-3..1e9 both signs" => Sign() * Math.Pow(10, random.NextDouble() * 12 - 3),
                "small integers" => random.Next(-3, 20),
                "all negative" => -Math.Exp(Normal() * 3),
                "constant" => constant,
                _ => throw new ArgumentOutOfRangeException(nameof(distribution), distribution, null),
            };
        }

        return values;
    }
}
