namespace Orleans.Pipeline.Tests.Chaining;

/// <summary>Every way a chained pipeline keys the upstream's results.</summary>
public sealed class ChainInputTests
{
    private static readonly string[] Outputs = ["count", "region"];

    [Theory]
    [InlineData("key", "eu/device-7", "eu/device-7")]
    [InlineData("all", "eu/device-7", "all")]
    [InlineData("prefix:/", "eu/device-7", "eu")]
    [InlineData("prefix:/", "device-7", "device-7")] // no separator: the whole key
    [InlineData("field:region", "eu/device-7", "44")]
    public void Each_input_key_maps_an_upstream_result_to_its_downstream_key(string keyBy, string upstreamKey, string expected)
    {
        var keyOf = new ChainInput("up", keyBy).Compile(Outputs);

        Assert.Equal(expected, keyOf(upstreamKey, [3, 44]));
    }

    [Fact]
    public void Hash_buckets_are_the_upstream_keys_bucket_among_n_and_spread_over_all_of_them()
    {
        var keyOf = new ChainInput("up", "hash:8").Compile(Outputs);
        var buckets = Enumerable.Range(0, 1_000).Select(i => keyOf($"key-{i}", [1, 1])).ToList();

        Assert.Equal(PipelineNames.PartitionOf("key-5", 8).ToString(System.Globalization.CultureInfo.InvariantCulture), buckets[5]);
        Assert.Equal(Enumerable.Range(0, 8).Select(b => b.ToString(System.Globalization.CultureInfo.InvariantCulture)), buckets.Distinct().Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_result_without_the_key_field_has_no_downstream_key()
    {
        Assert.Null(new ChainInput("up", "field:region").Compile(Outputs)("a", [1, double.NaN]));
    }
}
