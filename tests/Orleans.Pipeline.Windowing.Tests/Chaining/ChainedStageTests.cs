using Microsoft.Extensions.DependencyInjection;
using Orleans.Pipeline.Windowing.Aggregation;
using Orleans.Pipeline.Windowing.Chaining;
using Orleans.Serialization;

namespace Orleans.Pipeline.Windowing.Tests.Chaining;

/// <summary>
/// A downstream stage over upstream results, on random traces with disorder and late events within the upstream's
/// lateness (which revise upstream windows), against a brute-force evaluation from the raw events: group them into
/// the upstream windows, aggregate, regroup those into the downstream windows, aggregate again. Exact: an upstream
/// revision replaces its contribution, never adds to it; and a stage continued from its serialized state goes on as
/// if it had never stopped.
/// </summary>
public sealed class ChainedStageTests
{
    private const long Second = 1_000;

    private static readonly Serializer Serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();

    private sealed record Plan(string Name, WindowingDefinition Upstream, Func<string, string> DownstreamKey, WindowingDefinition Downstream,
        Func<List<(long Start, long End, double[] Values)>, double> BruteForce);

    /// <summary>A tumbling max per auction feeding a global max per window (Nexmark q7).</summary>
    private static readonly Plan GlobalMax = new("max per auction, then the global max",
        new WindowingDefinition(WindowSpec.Tumbling(Second), [AggregationSpec.Max("price")], MaxOutOfOrdernessMs: 100, AllowedLatenessMs: 500),
        _ => "all",
        new WindowingDefinition(WindowSpec.Tumbling(Second), [AggregationSpec.Max("max_price")], AllowedLatenessMs: 5 * Second),
        windows => windows.Max(w => w.Values[0]));

    /// <summary>A per-device average feeding a per-region average (of the devices' averages) over 2 s.</summary>
    private static readonly Plan RegionAverage = new("average per device, then the average per region",
        new WindowingDefinition(WindowSpec.Tumbling(Second), [AggregationSpec.Avg("price")], MaxOutOfOrdernessMs: 100, AllowedLatenessMs: 500),
        key => $"region-{int.Parse(key[1..], System.Globalization.CultureInfo.InvariantCulture) % 3}",
        new WindowingDefinition(WindowSpec.Tumbling(2 * Second), [AggregationSpec.Avg("avg_price"), AggregationSpec.Count()], AllowedLatenessMs: 5 * Second),
        windows => windows.Average(w => w.Values[0]));

    /// <summary>A hopping count per item feeding the highest count per window (Nexmark q5): each hopping window is one contribution, grouped by its end.</summary>
    private static readonly Plan HotItems = new("hopping count per item, then the highest count per window",
        new WindowingDefinition(WindowSpec.Hopping(2 * Second, Second), [AggregationSpec.Count("price", "count")], MaxOutOfOrdernessMs: 100, AllowedLatenessMs: 500),
        _ => "all",
        new WindowingDefinition(WindowSpec.Tumbling(Second), [AggregationSpec.Max("count")], AllowedLatenessMs: 5 * Second),
        windows => windows.Max(w => w.Values[0]));

    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var plan in new[] { GlobalMax, RegionAverage, HotItems })
            for (var seed = 1; seed <= 25; seed++) data.Add(plan.Name, seed);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_downstream_stage_over_revised_upstream_results_equals_the_brute_force_of_the_composed_query(string name, int seed)
    {
        var plan = new[] { GlobalMax, RegionAverage, HotItems }.Single(p => p.Name == name);
        var random = new Random(seed);
        var keys = Enumerable.Range(0, random.Next(3, 12)).Select(k => $"k{k}").ToArray();
        // Events in arrival order: times move forward, a quarter arrive 150 to 550 ms late (more than the 100 ms of
        // disorder, within it plus the 500 ms of lateness: each is applied, many as revisions of windows that fired).
        var events = new List<(string Key, long Time, double Value)>();
        var latest = keys.ToDictionary(k => k, _ => 0L);
        long now = 10 * Second;
        for (var i = 0; i < random.Next(100, 400); i++)
        {
            now += random.Next(0, 60);
            var key = keys[random.Next(keys.Length)];
            // Late for its own key: behind the latest event time that key has seen.
            var time = random.Next(100) < 25 && latest[key] > 0 ? latest[key] - random.Next(150, 550) : now - random.Next(0, 50);
            latest[key] = Math.Max(latest[key], time);
            events.Add((key, time, random.Next(1, 1_000)));
        }

        // A last event per key far ahead, so that every window of the trace fires upstream (its own windows do not).
        var end = now + 20 * Second;
        events.AddRange(keys.Select(k => (k, end, 0.0)));

        var upstream = keys.ToDictionary(k => k, _ => new WindowEngine(plan.Upstream));
        var inputNames = upstream[keys[0]].OutputNames;
        var downstream = new Dictionary<string, ChainedStage>(StringComparer.Ordinal);
        var folded = new Dictionary<(string Key, long Start, long End), WindowResult>();
        var upstreamUpdates = 0;
        var downstreamUpdates = 0;
        var afterFiring = 0; // upstream results that reached a downstream window that had fired
        var results = new List<WindowResult>();
        var fired = new List<WindowResult>();
        foreach (var (key, time, value) in events)
        {
            results.Clear();
            Assert.Equal(EventOutcome.Applied, upstream[key].Process(time, [value], 0, results));
            upstreamUpdates += results.Count(r => r.Kind == ResultKind.Update);
            foreach (var r in results)
            {
                var target = plan.DownstreamKey(key);
                if (!downstream.TryGetValue(target, out var stage)) downstream[target] = stage = new ChainedStage(plan.Downstream, inputNames);
                var size = plan.Downstream.Window.SizeMs;
                if ((r.End - 1) - (r.End - 1) % size + size <= stage.Watermark) afterFiring++;
                fired.Clear();
                Assert.Equal(EventOutcome.Applied, stage.Apply(new Contribution(key, r.Start, r.End, r.Kind, r.Values), fired));
                Fold(target, fired);
            }

            // Now and then every downstream stage is stored and continued from its stored state, as a grain does.
            if (random.Next(10) == 0)
            {
                foreach (var target in downstream.Keys.ToList())
                    downstream[target] = new ChainedStage(plan.Downstream, inputNames, Serializer.Deserialize<ChainedStageState>(Serializer.SerializeToArray(downstream[target].State)));
            }

            // The upstream's word: every key's watermark has passed this (the slowest key holds it).
            var watermark = upstream.Values.Min(e => e.State.CurrentWatermark);
            foreach (var (target, stage) in downstream)
            {
                fired.Clear();
                stage.AdvanceWatermark(watermark, fired);
                Fold(target, fired);
            }
        }

        void Fold(string key, List<WindowResult> emitted)
        {
            foreach (var r in emitted)
            {
                downstreamUpdates += r.Kind == ResultKind.Update ? 1 : 0;
                if (r.Kind == ResultKind.Retraction) folded.Remove((key, r.Start, r.End));
                else folded[(key, r.Start, r.End)] = r;
            }
        }

        var expected = BruteForce(plan, events.Where(e => e.Time < end).ToList());
        Assert.Equal(expected.Keys.Order(), folded.Keys.Order());
        foreach (var (window, value) in expected)
            Assert.True(Math.Abs(folded[window].Values[0] - value) < 1e-9, $"{window}: expected {value}, got {folded[window]}");
        Assert.True(upstreamUpdates > 0, "the trace revised no upstream window");
        // Each upstream result that reaches a fired window revises it once at most (a repeat of the same values not at all).
        Assert.True(downstreamUpdates <= afterFiring, $"{downstreamUpdates} downstream updates for {afterFiring} upstream results after firing");
        Assert.All(downstream.Values, s => Assert.Equal(0, s.LateContributions));
    }

    /// <summary>The composed query from the raw events alone.</summary>
    private static Dictionary<(string, long, long), double> BruteForce(Plan plan, List<(string Key, long Time, double Value)> events)
    {
        // Upstream: every event in each window that contains it; each window's aggregate over its events.
        var upstream = new Dictionary<(string Key, long Start, long End), List<double>>();
        var spec = plan.Upstream.Window;
        foreach (var (key, time, value) in events)
        {
            for (var start = time - time % spec.SlideMs; start > time - spec.SizeMs; start -= spec.SlideMs)
            {
                if (!upstream.TryGetValue((key, start, start + spec.SizeMs), out var list)) upstream[(key, start, start + spec.SizeMs)] = list = [];
                list.Add(value);
            }
        }

        var function = plan.Upstream.Aggregations[0].Function;
        double Aggregate(List<double> values) => function switch { "max" => values.Max(), "avg" => values.Average(), "count" => values.Count, _ => throw new ArgumentException(function) };

        // Downstream: each upstream window, at its last instant, into the downstream window of its new key.
        var size = plan.Downstream.Window.SizeMs;
        return upstream
            .GroupBy(u => (Key: plan.DownstreamKey(u.Key.Key), Start: (u.Key.End - 1) - (u.Key.End - 1) % size))
            .ToDictionary(g => (g.Key.Key, g.Key.Start, g.Key.Start + size), g => plan.BruteForce(g.Select(u => (u.Key.Start, u.Key.End, new[] { Aggregate(u.Value) })).ToList()));
    }

    [Fact]
    public void A_revision_replaces_its_contribution_a_retraction_removes_it_and_the_last_retraction_retracts_the_window()
    {
        var stage = new ChainedStage(new WindowingDefinition(WindowSpec.Tumbling(10), [AggregationSpec.Sum("n"), AggregationSpec.Count()], AllowedLatenessMs: 100), ["n"]);
        var output = new List<WindowResult>();

        stage.Apply(new Contribution("a", 0, 5, ResultKind.Final, [3]), output);
        stage.Apply(new Contribution("b", 0, 5, ResultKind.Final, [4]), output);
        stage.AdvanceWatermark(10, output);
        var final = Assert.Single(output);
        Assert.Equal((ResultKind.Final, 1, 7.0, 2.0), (final.Kind, final.Revision, final.Values[0], final.Values[1]));

        output.Clear();
        stage.Apply(new Contribution("a", 0, 5, ResultKind.Update, [5]), output); // a's window revised: 5 replaces 3
        stage.Apply(new Contribution("a", 0, 5, ResultKind.Update, [5]), output); // the same again: no change, no emission
        stage.Apply(new Contribution("b", 0, 5, ResultKind.Retraction, []), output);
        Assert.Equal([(ResultKind.Update, 2, 9.0), (ResultKind.Update, 3, 5.0)], output.Select(r => (r.Kind, r.Revision, r.Values[0])));

        output.Clear();
        stage.Apply(new Contribution("a", 0, 5, ResultKind.Retraction, []), output);
        Assert.Equal((ResultKind.Retraction, 4), (Assert.Single(output).Kind, output[0].Revision));
    }

    [Fact]
    public void A_contribution_past_the_end_plus_the_allowed_lateness_is_late_and_changes_nothing()
    {
        var stage = new ChainedStage(new WindowingDefinition(WindowSpec.Tumbling(10), [AggregationSpec.Count()], AllowedLatenessMs: 5), []);
        var output = new List<WindowResult>();
        stage.Apply(new Contribution("a", 0, 10, ResultKind.Final, []), output);
        stage.AdvanceWatermark(15, output);
        output.Clear();

        Assert.Equal(EventOutcome.Late, stage.Apply(new Contribution("b", 0, 10, ResultKind.Final, []), output));
        Assert.Empty(output);
        Assert.Equal((1L, 0), (stage.LateContributions, stage.WindowCount));
    }

    [Fact]
    public void Windows_fire_on_the_upstreams_watermark_not_on_the_contributions_times()
    {
        var stage = new ChainedStage(new WindowingDefinition(WindowSpec.Tumbling(10), [AggregationSpec.Count()]), []);
        var output = new List<WindowResult>();
        stage.Apply(new Contribution("a", 0, 10, ResultKind.Final, []), output);
        stage.Apply(new Contribution("a", 100, 110, ResultKind.Final, []), output); // far later: fires nothing by itself
        Assert.Empty(output);

        stage.AdvanceWatermark(10, output);
        Assert.Equal([(0L, 10L)], output.Select(r => (r.Start, r.End)));
    }

    [Fact]
    public void The_next_due_watermark_is_the_first_open_windows_end_then_the_end_of_its_lateness()
    {
        var stage = new ChainedStage(new WindowingDefinition(WindowSpec.Tumbling(10), [AggregationSpec.Count()], AllowedLatenessMs: 5), []);
        var output = new List<WindowResult>();
        Assert.Equal(long.MaxValue, stage.NextDue);

        stage.Apply(new Contribution("a", 10, 20, ResultKind.Final, [], 1), output);
        stage.Apply(new Contribution("a", 0, 10, ResultKind.Final, [], 1), output);
        Assert.Equal(10, stage.NextDue);
        stage.AdvanceWatermark(stage.NextDue - 1, output);
        Assert.Empty(output); // one short of it: nothing changes

        stage.AdvanceWatermark(10, output);
        Assert.Equal(15, stage.NextDue); // [0, 10) fired, forgotten at 15; [10, 20) fires at 20
        stage.AdvanceWatermark(15, output);
        Assert.Equal((20L, 1), (stage.NextDue, stage.WindowCount));
    }

    [Fact]
    public void A_contribution_delivered_again_or_older_than_the_one_held_changes_nothing()
    {
        var stage = new ChainedStage(new WindowingDefinition(WindowSpec.Tumbling(10), [AggregationSpec.Sum("n")], AllowedLatenessMs: 100), ["n"]);
        var output = new List<WindowResult>();
        stage.Apply(new Contribution("a", 0, 10, ResultKind.Final, [3], 1), output);
        stage.AdvanceWatermark(10, output);
        stage.Apply(new Contribution("a", 0, 10, ResultKind.Update, [5], 2), output);
        stage.Apply(new Contribution("a", 0, 10, ResultKind.Final, [3], 1), output); // revision 1 again, after 2
        stage.Apply(new Contribution("a", 0, 10, ResultKind.Update, [5], 2), output); // revision 2 again
        stage.Apply(new Contribution("a", 0, 10, ResultKind.Retraction, [], 3), output);
        stage.Apply(new Contribution("a", 0, 10, ResultKind.Update, [5], 2), output); // older than the retraction

        Assert.Equal([(ResultKind.Final, 3.0), (ResultKind.Update, 5.0), (ResultKind.Retraction, 0.0)], output.Select(r => (r.Kind, r.Values[0])));
    }

    [Fact]
    public void A_quantile_over_an_upstream_quantile_merges_the_sketches_and_answers_for_all_events()
    {
        // Two keys with very different values: the median of all events is not the median of the two medians.
        var upstream = new WindowingDefinition(WindowSpec.Tumbling(10), [AggregationSpec.Quantiles("v", 0.5)]);
        var random = new Random(3);
        var all = new List<double>();
        var stage = new ChainedStage(new WindowingDefinition(WindowSpec.Tumbling(10), [AggregationSpec.Quantiles("quantile_v", 0.5, 0.9)]),
            ["quantile_v_p50"], upstream: upstream);
        var output = new List<WindowResult>();
        foreach (var (key, count, scale) in new[] { ("a", 900, 1.0), ("b", 100, 1_000.0) })
        {
            var engine = new WindowEngine(upstream) { EmitStates = true };
            var fired = new List<WindowResult>();
            for (var i = 0; i < count; i++)
            {
                var value = (1 + random.NextDouble()) * scale;
                all.Add(value);
                engine.Process(i % 10, [value], 0, fired);
            }

            engine.AdvanceWatermark(10, fired);
            var result = Assert.Single(fired);
            stage.Apply(new Contribution(key, result.Start, result.End, result.Kind, result.Values, result.Revision) { States = result.States }, output);
        }

        stage.AdvanceWatermark(10, output);
        all.Sort();
        var merged = Assert.Single(output);
        Assert.Equal(2, merged.Values.Length);
        Assert.InRange(merged.Values[0], all[499] * 0.98, all[499] * 1.02);
        Assert.InRange(merged.Values[1], all[899] * 0.98, all[899] * 1.02);
    }

    [Fact]
    public void A_definition_that_cannot_run_downstream_is_refused_with_every_problem_named()
    {
        var error = Assert.Throws<ArgumentException>(() => new ChainedStage(
            new WindowingDefinition(WindowSpec.Session(10), [AggregationSpec.Max("price")], TimeMode.ProcessingTime, IdleTimeoutMs: 5), ["count"]));

        Assert.Contains("not sessions", error.Message, StringComparison.Ordinal);
        Assert.Contains("runs in event time", error.Message, StringComparison.Ordinal);
        Assert.Contains("no idle timeout", error.Message, StringComparison.Ordinal);
        Assert.Contains("reads 'price', which the upstream does not produce (it produces count)", error.Message, StringComparison.Ordinal);
    }
}
