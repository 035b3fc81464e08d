using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Windowing.Tests.Properties;

/// <summary>
/// <see cref="WindowEngine.NextAdvanceDue"/> lets a silo wake a key only when time can change it, instead of ticking a
/// timer per key. Checked on generated keys (every window kind, disorder, lateness, idle timeouts, processing time,
/// early firing, out-of-order and late events) against the engine itself driven every millisecond.
/// </summary>
public sealed class NextAdvanceDueTests
{
    private static readonly AggregationSpec[] CountAndSum = [AggregationSpec.Count(), AggregationSpec.Sum("v")];

    public static TheoryData<int> Batches()
    {
        var data = new TheoryData<int>();
        for (var batch = 0; batch < 10; batch++) data.Add(batch);
        return data;
    }

    private sealed record Arrival(long ProcessingTime, long EventTime, double Value);

    private static WindowingDefinition Definition(Random random, bool early)
    {
        var window = random.Next(3) switch
        {
            0 => WindowSpec.Tumbling(random.Next(5, 60)),
            1 => WindowSpec.Hopping(40, random.Next(1, 5) * 10),
            _ => WindowSpec.Session(random.Next(5, 30)),
        };
        var processingTime = random.Next(4) == 0;
        return new WindowingDefinition(
            window,
            CountAndSum,
            processingTime ? TimeMode.ProcessingTime : TimeMode.EventTime,
            MaxOutOfOrdernessMs: random.Next(0, 20),
            AllowedLatenessMs: random.Next(3) == 0 ? 0 : random.Next(1, 40),
            IdleTimeoutMs: processingTime || random.Next(5) == 0 ? null : random.Next(5, 80),
            EarlyFiringIntervalMs: early ? random.Next(5, 50) : null);
    }

    /// <summary>Bursts of events with quiet spells between them; event times wander ahead and out of order.</summary>
    private static List<Arrival> Arrivals(Random random)
    {
        var arrivals = new List<Arrival>();
        long now = 1_000, eventTime = 1_000;
        var count = random.Next(5, 60);
        for (var i = 0; i < count; i++)
        {
            now += random.Next(4) == 0 ? random.Next(50, 300) : random.Next(0, 10);
            eventTime += random.Next(0, 15);
            var time = random.Next(8) == 0 ? eventTime - random.Next(0, 120) : eventTime; // some disorder, some late
            arrivals.Add(new Arrival(now, time, random.Next(1, 10)));
        }

        return arrivals;
    }

    private static string Describe(IEnumerable<WindowResult> results) =>
        string.Join("; ", results.Select(r => $"{r.Kind} [{r.Start},{r.End}) r{r.Revision} n{r.EventCount} {string.Join(",", r.Values)} wm{r.Watermark}"));

    [Theory]
    [MemberData(nameof(Batches))]
    public void Advancing_only_when_due_emits_exactly_what_advancing_every_millisecond_emits(int batch)
    {
        for (var seed = batch * 50; seed < batch * 50 + 50; seed++)
        {
            var random = new Random(seed);
            var definition = Definition(random, early: false);
            var arrivals = Arrivals(random);
            var end = arrivals[^1].ProcessingTime + 2_000;

            // Every millisecond: Advance, then the events arriving then.
            var eager = new WindowEngine(definition);
            var eagerOut = new List<WindowResult>();
            var next = 0;
            for (var now = arrivals[0].ProcessingTime; now <= end; now++)
            {
                eager.Advance(now, eagerOut);
                for (; next < arrivals.Count && arrivals[next].ProcessingTime == now; next++)
                    eager.Process(arrivals[next].EventTime, [arrivals[next].Value], now, eagerOut);
            }

            // Only when due, and once as events arrive (an idle key's watermark has moved on by then, due or not:
            // the events are judged against it), as a key grain does.
            var lazy = new WindowEngine(definition);
            var lazyOut = new List<WindowResult>();
            void CatchUp(long until)
            {
                long due;
                while ((due = lazy.NextAdvanceDue) <= until)
                {
                    var before = lazyOut.Count;
                    var windows = lazy.State.WindowCount;
                    lazy.Advance(due, lazyOut);
                    Assert.True(lazyOut.Count > before || lazy.State.WindowCount < windows,
                        $"seed {seed}: woken at {due} for nothing ({definition})");
                }
            }

            foreach (var group in arrivals.GroupBy(a => a.ProcessingTime))
            {
                CatchUp(group.Key);
                lazy.Advance(group.Key, lazyOut);
                foreach (var arrival in group) lazy.Process(arrival.EventTime, [arrival.Value], arrival.ProcessingTime, lazyOut);
            }

            CatchUp(end);
            Assert.True(Describe(eagerOut) == Describe(lazyOut), $"seed {seed} ({definition}):\n every ms: {Describe(eagerOut)}\n when due: {Describe(lazyOut)}");
        }
    }

    [Theory]
    [MemberData(nameof(Batches))]
    public void Nothing_changes_before_the_due_time_and_something_does_at_it_with_early_firing_too(int batch)
    {
        for (var seed = 10_000 + batch * 50; seed < 10_000 + batch * 50 + 50; seed++)
        {
            var random = new Random(seed);
            var definition = Definition(random, early: random.Next(2) == 0);
            var arrivals = Arrivals(random);
            for (var upTo = 1; upTo <= arrivals.Count; upTo += random.Next(1, 6))
            {
                // Two keys in the same state: one advanced to just before the due time, one to the due time.
                WindowEngine Replay()
                {
                    var engine = new WindowEngine(definition);
                    var output = new List<WindowResult>();
                    foreach (var arrival in arrivals.Take(upTo)) engine.Process(arrival.EventTime, [arrival.Value], arrival.ProcessingTime, output);
                    return engine;
                }

                var now = arrivals[upTo - 1].ProcessingTime;
                var probe = Replay();
                var due = probe.NextAdvanceDue;
                if (due == long.MaxValue)
                {
                    var output = new List<WindowResult>();
                    var (watermark, windows) = (probe.State.CurrentWatermark, probe.State.WindowCount);
                    probe.Advance(now + 100_000, output);
                    Assert.True(output.Count == 0 && probe.State.WindowCount == windows && probe.State.CurrentWatermark == watermark,
                        $"seed {seed}, {upTo} events: never due, yet advancing emitted {output.Count} ({definition})");
                    continue;
                }

                if (due > now)
                {
                    var before = Replay();
                    var output = new List<WindowResult>();
                    var windows = before.State.WindowCount;
                    before.Advance(due - 1, output);
                    // An idle key's watermark may creep forward before then, but onto no window.
                    Assert.True(output.Count == 0 && before.State.WindowCount == windows,
                        $"seed {seed}, {upTo} events: due at {due}, yet advancing to {due - 1} emitted {output.Count} ({definition})");
                }

                var at = Replay();
                var fired = new List<WindowResult>();
                var held = at.State.WindowCount;
                var startsInterval = definition.EarlyFiringIntervalMs is not null && at.State.LastEarlyFiring == long.MinValue;
                at.Advance(Math.Max(due, now), fired);
                Assert.True(fired.Count > 0 || at.State.WindowCount < held || startsInterval,
                    $"seed {seed}, {upTo} events: due at {due}, yet advancing then changed nothing ({definition})");
            }
        }
    }
}
