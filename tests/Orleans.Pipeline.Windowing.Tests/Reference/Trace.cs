using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Windowing.Tests.Reference;

/// <summary>One input to an engine: an event (with its arrival time) or the passing of processing time.</summary>
public abstract record TraceStep(long ProcessingTime);

public sealed record EventStep(long EventTime, double[] Values, long ProcessingTime) : TraceStep(ProcessingTime)
{
    public override string ToString() => $"event t={EventTime} pt={ProcessingTime} [{string.Join(", ", Values)}]";
}

public sealed record AdvanceStep(long ProcessingTime) : TraceStep(ProcessingTime)
{
    public override string ToString() => $"advance pt={ProcessingTime}";
}

/// <summary>A pipeline definition and the inputs to run through it.</summary>
public sealed record Trace(int Seed, WindowingDefinition Definition, IReadOnlyList<TraceStep> Steps)
{
    public override string ToString() =>
        $"seed {Seed}: {Definition.Window}, mode {Definition.TimeMode}, disorder {Definition.MaxOutOfOrdernessMs}, " +
        $"lateness {Definition.AllowedLatenessMs}, idle {Definition.IdleTimeoutMs?.ToString() ?? "off"}, " +
        $"early {Definition.EarlyFiringIntervalMs?.ToString() ?? "off"}, {Steps.Count} steps";
}

/// <summary>Generates random traces with disorder, late events, idle periods and session merges.</summary>
public static class TraceGenerator
{
    public static readonly AggregationSpec[] AllAggregations =
    [
        AggregationSpec.Count(),
        AggregationSpec.Count("a", "count_a"),
        AggregationSpec.Sum("a"),
        AggregationSpec.Min("a"),
        AggregationSpec.Max("b"),
        AggregationSpec.Avg("a"),
        AggregationSpec.First("a"),
        AggregationSpec.Last("b"),
        AggregationSpec.Distinct("a"),
        AggregationSpec.Quantiles("b", 0.5, 0.9, 1.0),
    ];

    public static Trace Generate(int seed, WindowKind kind)
    {
        var random = new Random(seed);
        var window = kind switch
        {
            WindowKind.Tumbling => RandomTumbling(random),
            WindowKind.Hopping => RandomHopping(random),
            _ => WindowSpec.Session(random.Next(1, 30)),
        };

        var definition = new WindowingDefinition(
            window,
            AllAggregations,
            random.Next(10) == 0 ? TimeMode.ProcessingTime : TimeMode.EventTime,
            MaxOutOfOrdernessMs: random.Next(3) == 0 ? 0 : random.Next(0, 20),
            AllowedLatenessMs: random.Next(3) == 0 ? 0 : random.Next(0, 30),
            IdleTimeoutMs: random.Next(2) == 0 ? null : random.Next(5, 50),
            EarlyFiringIntervalMs: random.Next(3) == 0 ? random.Next(5, 30) : null);

        var steps = new List<TraceStep>();
        var count = random.Next(40, 250);
        long baseTime = random.Next(0, 1000);
        long processingTime = random.Next(0, 1000);
        var disorder = random.Next(0, 40);
        for (var i = 0; i < count; i++)
        {
            processingTime += random.Next(0, 4);
            var roll = random.Next(100);
            if (roll < 12)
            {
                // Processing time passes: sometimes long enough for idle advancement.
                processingTime += random.Next(10) == 0 ? random.Next(20, 120) : random.Next(0, 10);
                steps.Add(new AdvanceStep(processingTime));
                continue;
            }

            baseTime += random.Next(100) < 5 ? random.Next(20, 80) : random.Next(0, 5);
            var eventTime = baseTime - (random.Next(100) < 30 ? random.Next(0, disorder + 1) : 0);
            if (random.Next(100) < 5) eventTime = baseTime - random.Next(0, 100); // often beyond the lateness
            eventTime = Math.Max(0, eventTime);
            steps.Add(new EventStep(eventTime, [RandomValue(random), RandomValue(random)], processingTime));
        }

        steps.Add(new AdvanceStep(processingTime + 1_000));
        return new Trace(seed, definition, steps);
    }

    private static WindowSpec RandomTumbling(Random random)
    {
        var size = random.Next(1, 40);
        return WindowSpec.Tumbling(size, random.Next(3) == 0 ? random.Next(0, size) : 0);
    }

    private static WindowSpec RandomHopping(Random random)
    {
        var slide = random.Next(1, 15);
        var size = slide * random.Next(1, 5) + (random.Next(3) == 0 ? random.Next(0, slide) : 0);
        return WindowSpec.Hopping(size, slide, random.Next(3) == 0 ? random.Next(0, slide) : 0);
    }

    // Integers keep sums exact in any order; NaN is a missing value.
    private static double RandomValue(Random random) => random.Next(100) < 8 ? double.NaN : random.Next(-50, 51);
}
