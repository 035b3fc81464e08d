using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Windowing.Tests;

/// <summary>Hand-picked examples that pin the boundary semantics the README documents.</summary>
public sealed class WindowEngineSemanticsTests
{
    private static readonly AggregationSpec[] CountAndSum = [AggregationSpec.Count(), AggregationSpec.Sum("v")];

    private static WindowEngine Engine(WindowSpec window, long disorder = 0, long lateness = 0, long? idle = null, long? early = null, TimeMode mode = TimeMode.EventTime) =>
        new(new WindowingDefinition(window, CountAndSum, mode, disorder, lateness, idle, early));

    private static List<WindowResult> Send(WindowEngine engine, long time, double value = 1, long processingTime = 0)
    {
        var output = new List<WindowResult>();
        engine.Process(time, [value], processingTime, output);
        return output;
    }

    [Fact]
    public void A_tumbling_event_at_a_windows_end_belongs_to_the_next_window()
    {
        var engine = Engine(WindowSpec.Tumbling(10));
        Send(engine, 9);
        var fired = Send(engine, 10);
        var result = Assert.Single(fired);
        Assert.Equal((0, 10, 1L), (result.Start, result.End, result.EventCount));
    }

    [Fact]
    public void A_final_result_fires_when_the_watermark_reaches_the_windows_end_and_not_one_before()
    {
        var engine = Engine(WindowSpec.Tumbling(10), disorder: 3);
        Send(engine, 5);
        Assert.Empty(Send(engine, 12)); // watermark 9
        var fired = Assert.Single(Send(engine, 13)); // watermark 10 = end
        Assert.Equal(ResultKind.Final, fired.Kind);
        Assert.Equal(1, fired.Revision);
        Assert.Equal(10, fired.Watermark);
    }

    [Fact]
    public void The_watermark_never_moves_backwards()
    {
        var engine = Engine(WindowSpec.Tumbling(10), disorder: 5, lateness: 100);
        Send(engine, 50);
        Send(engine, 20);
        Assert.Equal(45, engine.State.CurrentWatermark);
    }

    [Fact]
    public void A_late_event_within_the_allowed_lateness_emits_an_update_with_the_next_revision()
    {
        var engine = Engine(WindowSpec.Tumbling(10), lateness: 5);
        Send(engine, 1, value: 2);
        Assert.Single(Send(engine, 12));
        var update = Assert.Single(Send(engine, 3, value: 5));
        Assert.Equal((ResultKind.Update, 2, 2L), (update.Kind, update.Revision, update.EventCount));
        Assert.Equal(7, update.Values[1]);
    }

    [Fact]
    public void A_late_event_beyond_the_allowed_lateness_is_reported_late_counted_and_not_applied()
    {
        var engine = Engine(WindowSpec.Tumbling(10), lateness: 5);
        Send(engine, 1);
        Send(engine, 15); // watermark 15 = end + lateness: [0, 10) expires
        var output = new List<WindowResult>();
        Assert.Equal(EventOutcome.Late, engine.Process(9, [1.0], 0, output));
        Assert.Empty(output);
        Assert.Equal(1, engine.State.LateEventCount);
        Assert.Equal(2, engine.State.AppliedEventCount);
    }

    [Fact]
    public void A_hopping_event_belongs_to_every_window_that_covers_it()
    {
        var engine = Engine(WindowSpec.Hopping(20, 5));
        Send(engine, 17);
        var fired = Send(engine, 100);
        Assert.Equal([(0L, 20L), (5L, 25L), (10L, 30L), (15L, 35L)], fired.Select(r => (r.Start, r.End)));
    }

    [Fact]
    public void An_offset_shifts_the_window_grid()
    {
        var engine = Engine(WindowSpec.Tumbling(10, offsetMs: 3));
        Send(engine, 2);
        var fired = Assert.Single(Send(engine, 50));
        Assert.Equal((-7L, 3L), (fired.Start, fired.End));
    }

    [Fact]
    public void Session_events_exactly_a_gap_apart_merge_into_one_session_from_the_first_to_the_last_plus_the_gap()
    {
        var engine = Engine(WindowSpec.Session(10));
        Send(engine, 100);
        Send(engine, 110);
        var fired = Assert.Single(Send(engine, 200));
        Assert.Equal((100L, 120L, 2L), (fired.Start, fired.End, fired.EventCount));
    }

    [Fact]
    public void Session_events_more_than_a_gap_apart_are_separate_sessions()
    {
        var engine = Engine(WindowSpec.Session(10));
        var fired = Send(engine, 100).Concat(Send(engine, 111)).Concat(Send(engine, 300));
        Assert.Equal([(100L, 110L), (111L, 121L)], fired.Select(r => (r.Start, r.End)));
    }

    [Fact]
    public void A_late_event_bridging_two_emitted_sessions_retracts_both_and_emits_the_merged_session()
    {
        var engine = Engine(WindowSpec.Session(10), lateness: 100);
        Send(engine, 100, value: 1);
        Assert.Equal(2, Send(engine, 118, value: 2).Concat(Send(engine, 200)).Count()); // both fired
        var output = Send(engine, 109, value: 4); // 9 after the first session's event, 9 before the second's
        Assert.Equal(
            [(ResultKind.Retraction, 100L, 110L, 2), (ResultKind.Retraction, 118L, 128L, 2), (ResultKind.Final, 100L, 128L, 1)],
            output.Select(r => (r.Kind, r.Start, r.End, r.Revision)));
        Assert.Equal([3.0, 7.0], output[^1].Values);
    }

    [Fact]
    public void Advancing_past_the_idle_timeout_closes_a_quiet_keys_windows()
    {
        var engine = Engine(WindowSpec.Tumbling(10), idle: 1_000);
        Send(engine, 5, processingTime: 10_000);
        var output = new List<WindowResult>();
        engine.Advance(10_999, output);
        Assert.Empty(output);
        engine.Advance(11_000, output); // watermark 5 + 1000
        Assert.Equal(ResultKind.Final, Assert.Single(output).Kind);
    }

    [Fact]
    public void Without_an_idle_timeout_advancing_never_moves_the_watermark()
    {
        var engine = Engine(WindowSpec.Tumbling(10));
        Send(engine, 5, processingTime: 10_000);
        var output = new List<WindowResult>();
        engine.Advance(long.MaxValue / 2, output);
        Assert.Empty(output);
        Assert.Equal(5, engine.State.CurrentWatermark);
    }

    [Fact]
    public void Early_firing_emits_partials_of_changed_open_windows_once_per_interval()
    {
        var engine = Engine(WindowSpec.Tumbling(1_000), early: 100);
        var output = new List<WindowResult>();
        engine.Advance(0, output);
        Send(engine, 5, processingTime: 10);
        engine.Advance(50, output);
        Assert.Empty(output);
        engine.Advance(100, output);
        var partial = Assert.Single(output);
        Assert.Equal((ResultKind.Partial, 1), (partial.Kind, partial.Revision));
        output.Clear();
        engine.Advance(200, output); // unchanged since: nothing
        Assert.Empty(output);
        Send(engine, 6, processingTime: 210);
        engine.Advance(300, output);
        Assert.Equal((ResultKind.Partial, 2, 2L), (output[0].Kind, output[0].Revision, output[0].EventCount));
    }

    [Fact]
    public void In_processing_time_mode_events_are_assigned_by_arrival_time_and_advancing_follows_the_clock()
    {
        var engine = Engine(WindowSpec.Tumbling(10), mode: TimeMode.ProcessingTime);
        Send(engine, time: 999_999, processingTime: 3);
        var output = new List<WindowResult>();
        engine.Advance(10, output);
        var fired = Assert.Single(output);
        Assert.Equal((0L, 10L), (fired.Start, fired.End));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(EventTimeRange.MaxMs + 1)]
    public void An_event_time_out_of_range_throws_and_changes_nothing(long time)
    {
        var engine = Engine(WindowSpec.Tumbling(10));
        Send(engine, 5);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Send(engine, time));
        Assert.Contains("event time", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, engine.State.AppliedEventCount);
        Assert.Equal(1, engine.State.WindowCount);
    }

    [Fact]
    public void A_missing_value_is_skipped_by_field_aggregations_but_its_event_is_counted()
    {
        var engine = Engine(WindowSpec.Tumbling(10));
        Send(engine, 1, value: 4);
        Send(engine, 2, value: double.NaN);
        var fired = Assert.Single(Send(engine, 20));
        Assert.Equal([2.0, 4.0], fired.Values);
    }

    [Fact]
    public void State_of_another_layout_is_refused_with_the_reason()
    {
        var engine = Engine(WindowSpec.Tumbling(10));
        Send(engine, 1);
        var error = Assert.Throws<ArgumentException>(() => new WindowEngine(
            new WindowingDefinition(WindowSpec.Tumbling(20), CountAndSum), engine.State));
        Assert.Contains("cannot change under existing state", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(WindowKind.Tumbling, 0, 0, 0, "window size must be > 0")]
    [InlineData(WindowKind.Hopping, 10, 20, 0, "must not exceed the window size")]
    [InlineData(WindowKind.Hopping, 10, 0, 0, "window slide must be > 0")]
    [InlineData(WindowKind.Session, 0, 0, 0, "session gap must be > 0")]
    public void An_invalid_window_is_refused_naming_the_problem(WindowKind kind, long size, long slide, long gap, string problem)
    {
        var definition = new WindowingDefinition(new WindowSpec(kind, size, slide, gap, 0), CountAndSum);
        var error = Assert.Throws<ArgumentException>(() => new WindowEngine(definition));
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_aggregation_is_refused_listing_the_known_ones()
    {
        var definition = new WindowingDefinition(WindowSpec.Tumbling(10), [new AggregationSpec("median", "v")]);
        var error = Assert.Throws<ArgumentException>(() => new WindowEngine(definition));
        Assert.Contains("unknown aggregation function 'median'", error.Message, StringComparison.Ordinal);
        Assert.Contains("quantile", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_custom_aggregator_registered_by_name_runs_and_merges_in_sessions()
    {
        var registry = new AggregatorRegistry().Register("range", new RangeAggregate());
        var definition = new WindowingDefinition(WindowSpec.Session(10), [new AggregationSpec("range", "v")], MaxOutOfOrdernessMs: 50);
        var engine = new WindowEngine(definition, registry: registry);
        var output = new List<WindowResult>();
        engine.Process(100, [3.0], 0, output);
        engine.Process(120, [10.0], 0, output);
        engine.Process(110, [5.0], 0, output); // bridges the two sessions
        Assert.Empty(output);
        engine.Process(500, [0.0], 0, output);
        var merged = Assert.Single(output);
        Assert.Equal((100L, 130L), (merged.Start, merged.End));
        Assert.Equal(7.0, merged.Values[0]);
    }

    /// <summary>A custom aggregate for the test: max − min.</summary>
    private sealed class RangeAggregate : IMergeableAggregate<RangeState>
    {
        public RangeState Create() => new();

        public void Add(RangeState state, long eventTime, double value)
        {
            state.Min = Math.Min(state.Min, value);
            state.Max = Math.Max(state.Max, value);
        }

        public void Merge(RangeState into, RangeState other)
        {
            into.Min = Math.Min(into.Min, other.Min);
            into.Max = Math.Max(into.Max, other.Max);
        }

        public void Result(RangeState state, Span<double> output) => output[0] = state.Max - state.Min;
    }

    private sealed class RangeState
    {
        public double Min = double.PositiveInfinity;
        public double Max = double.NegativeInfinity;
    }
}
