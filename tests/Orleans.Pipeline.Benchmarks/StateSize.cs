using Microsoft.Extensions.DependencyInjection;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;
using Orleans.Serialization;

namespace Orleans.Pipeline.Benchmarks;

/// <summary>Serialized bytes per open window, by aggregation set, through the Orleans serializer.</summary>
internal static class StateSize
{
    public static void Report()
    {
        var serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();
        (string Name, AggregationSpec[] Aggregations)[] sets =
        [
            ("sum", [AggregationSpec.Sum("v")]),
            ("count, sum, min, max, avg", [AggregationSpec.Count(), AggregationSpec.Sum("v"), AggregationSpec.Min("v"), AggregationSpec.Max("v"), AggregationSpec.Avg("v")]),
            ("first, last", [AggregationSpec.First("v"), AggregationSpec.Last("v")]),
            ("distinct (10 distinct values)", [AggregationSpec.Distinct("v")]),
            ("distinct (1,000 distinct values)", [AggregationSpec.Distinct("v")]),
            ("quantile p50, p99 (1,000 values)", [AggregationSpec.Quantiles("v", 0.5, 0.99)]),
        ];

        const int Windows = 1_000;
        Console.WriteLine($"| aggregations | bytes per open window (serialized, {Windows:N0} windows) |");
        Console.WriteLine("|---|---:|");
        foreach (var (name, aggregations) in sets)
        {
            var eventsPerWindow = name.Contains("1,000", StringComparison.Ordinal) ? 1_000 : 10;
            var definition = new WindowingDefinition(WindowSpec.Tumbling(1_000), aggregations);
            var empty = serializer.SerializeToArray(new WindowEngine(definition).State).Length;
            // A disorder bound this large keeps the watermark behind every window: all stay open.
            var open = new WindowEngine(definition with { MaxOutOfOrdernessMs = long.MaxValue / 4 });
            var output = new List<WindowResult>();
            var random = new Random(7);
            for (var w = 0; w < Windows; w++)
                for (var e = 0; e < eventsPerWindow; e++)
                    open.Process(w * 1_000L + e % 1_000, [Math.Round(Math.Exp(random.NextDouble() * 10), 2)], 0, output);

            var bytes = serializer.SerializeToArray(open.State).Length;
            Console.WriteLine($"| {name} | {(bytes - empty) / (double)Windows:F1} |");
        }
    }
}
