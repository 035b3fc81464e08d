using BenchmarkDotNet.Attributes;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Benchmarks;

/// <summary>
/// What a key grain's activation pays to build its engine: from the definition (validated and compiled every time;
/// the baseline) against from the definition's shared <see cref="WindowPlan"/>. A silo does this once per key
/// activation, so with 10^5–10^6 keys it is on the path of every new key.
/// Run: <c>dotnet run -c Release --project tests/Orleans.Pipeline.Benchmarks -- --filter *EngineActivation*</c>.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 3, iterationCount: 10)]
public class EngineActivationBenchmarks
{
    private readonly WindowingDefinition _definition = new(
        WindowSpec.Tumbling(1_000),
        [AggregationSpec.Count(), AggregationSpec.Sum("v"), AggregationSpec.Min("v"), AggregationSpec.Max("v")],
        MaxOutOfOrdernessMs: 200);

    [Benchmark(Baseline = true)]
    public WindowEngine FromDefinitionEachTime() => new(WindowPlan.Compile(_definition));

    [Benchmark]
    public WindowEngine FromSharedPlan() => new(WindowPlan.For(_definition));
}
