using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Pipeline.Windowing.Aggregation;
using Orleans.Pipeline.Windowing.Sketches;
using Orleans.Pipeline.Windowing.Tests.Reference;
using Orleans.Serialization;

namespace Orleans.Pipeline.Windowing.Tests.Properties;

/// <summary>
/// The engine against the brute-force reference on random traces: every step's emitted results (kind, bounds,
/// revision, count, watermark, values) and every event's outcome must be identical. Exact for count, sum, min, max,
/// avg, first and last; distinct within the HyperLogLog bound; quantiles within the sketch's relative accuracy.
/// The engine's state is also persisted and restored (through the Orleans serializer) at random steps.
/// </summary>
public sealed class EngineMatchesReferenceTests
{
    private const int TracesPerKind = 200;

    private static readonly Serializer Serializer =
        new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();

    public static TheoryData<WindowKind, int> Batches()
    {
        // Seeds in batches of 20 so a failure names a small range and the runner shows progress.
        var data = new TheoryData<WindowKind, int>();
        foreach (var kind in Enum.GetValues<WindowKind>())
            for (var first = 0; first < TracesPerKind; first += 20)
                data.Add(kind, first);
        return data;
    }

    [Theory]
    [MemberData(nameof(Batches))]
    public void The_engine_produces_exactly_the_reference_results_on_random_traces(WindowKind kind, int firstSeed)
    {
        for (var seed = firstSeed; seed < firstSeed + 20; seed++)
        {
            var trace = TraceGenerator.Generate(seed * 3 + (int)kind + 1, kind);
            var failure = Compare(trace);
            Assert.True(failure is null, failure);
        }
    }

    /// <summary>Runs the trace through both; returns a description of the first difference, or null.</summary>
    public static string? Compare(Trace trace)
    {
        var engine = new WindowEngine(trace.Definition);
        var reference = new ReferenceWindowing(trace.Definition);
        var restoreRandom = new Random(trace.Seed);
        var output = new List<WindowResult>();
        for (var i = 0; i < trace.Steps.Count; i++)
        {
            var step = trace.Steps[i];
            output.Clear();
            EventOutcome? outcome = null;
            switch (step)
            {
                case EventStep e:
                    outcome = engine.Process(e.EventTime, e.Values, e.ProcessingTime, output);
                    break;
                case AdvanceStep a:
                    engine.Advance(a.ProcessingTime, output);
                    break;
            }

            var (expected, expectedOutcome) = reference.Step(step);
            var difference = Difference(output, expected);
            if (outcome != expectedOutcome)
                difference = $"event outcome {outcome}, reference {expectedOutcome}";
            if (difference is not null)
                return Describe(trace, i, difference, output, expected);

            if (restoreRandom.Next(100) < 5)
            {
                // Persist and restore: the state alone must carry everything the engine needs.
                var bytes = Serializer.SerializeToArray(engine.State);
                engine = new WindowEngine(trace.Definition, Serializer.Deserialize<WindowState>(bytes));
            }
        }

        if (engine.State.LateEventCount != reference.LateEvents)
            return $"{trace}: late events {engine.State.LateEventCount}, reference {reference.LateEvents}";
        return null;
    }

    private static string? Difference(List<WindowResult> actual, List<ReferenceResult> expected)
    {
        if (actual.Count != expected.Count) return $"{actual.Count} results, reference {expected.Count}";
        var a = actual.OrderBy(r => r.Start).ThenBy(r => r.End).ThenBy(r => r.Revision).ToList();
        var e = expected.OrderBy(r => r.Start).ThenBy(r => r.End).ThenBy(r => r.Revision).ToList();
        for (var i = 0; i < a.Count; i++)
        {
            var x = a[i];
            var y = e[i];
            if (x.Start != y.Start || x.End != y.End || x.Revision != y.Revision || x.Kind != y.Kind ||
                x.EventCount != y.EventCount || x.Watermark != y.Watermark)
                return $"result {i}: identity differs";

            for (var v = 0; v < y.Values.Exact.Length; v++)
                if (!x.Values[v].Equals(y.Values.Exact[v]))
                    return $"result {i}: value {v} is {x.Values[v]}, reference {y.Values.Exact[v]}";

            var distinct = x.Values[y.Values.Exact.Length];
            if (Math.Abs(distinct - y.Values.Distinct) > 4 * HyperLogLogSketch.StandardError * y.Values.Distinct)
                return $"result {i}: distinct {distinct}, reference {y.Values.Distinct}";

            for (var q = 0; q < y.Values.Quantiles.Length; q++)
            {
                var estimate = x.Values[y.Values.Exact.Length + 1 + q];
                var exact = y.Values.Quantiles[q];
                var ok = double.IsNaN(exact)
                    ? double.IsNaN(estimate)
                    : Math.Abs(estimate - exact) <= QuantileSketch.RelativeAccuracy * Math.Abs(exact) + 1e-9;
                if (!ok) return $"result {i}: quantile {q} is {estimate}, reference {exact}";
            }
        }

        return null;
    }

    private static string Describe(Trace trace, int stepIndex, string difference, List<WindowResult> actual, List<ReferenceResult> expected)
    {
        var text = new StringBuilder();
        text.AppendLine($"Engine differs from the reference on {trace} (re-run: TraceGenerator.Generate({trace.Seed}, WindowKind.{trace.Definition.Window.Kind}))");
        text.AppendLine($"at step {stepIndex} ({trace.Steps[stepIndex]}): {difference}");
        text.AppendLine("recent steps:");
        for (var i = Math.Max(0, stepIndex - 8); i < stepIndex; i++) text.AppendLine($"  {i}: {trace.Steps[i]}");
        text.AppendLine("engine:");
        foreach (var r in actual) text.AppendLine($"  {r}");
        text.AppendLine("reference:");
        foreach (var r in expected) text.AppendLine($"  {r}");
        return text.ToString();
    }
}
