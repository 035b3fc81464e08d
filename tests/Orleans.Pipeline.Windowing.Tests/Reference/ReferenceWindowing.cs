using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Windowing.Tests.Reference;

/// <summary>
/// A deliberately simple implementation of the windowing semantics: it keeps every accepted event and recomputes each
/// window's contents and aggregates from that full list whenever it emits. Slow (quadratic) and obviously right;
/// the engine must produce exactly what it produces.
/// </summary>
public sealed class ReferenceWindowing(WindowingDefinition definition)
{
    private readonly List<Accepted> _accepted = [];
    private readonly HashSet<int> _frozen = []; // indexes of accepted events in sessions dropped for lateness
    private readonly Dictionary<(long Start, long End), Emission> _emissions = [];
    private long _watermark = long.MinValue;
    private long _maxTime = long.MinValue;
    private long _lastArrival = long.MinValue;
    private long _lastEarly = long.MinValue;
    private int _arrivals;

    public long LateEvents { get; private set; }

    private WindowSpec Window => definition.Window;

    private long Lateness => definition.AllowedLatenessMs;

    /// <summary>Runs one step; returns the emitted results and, for an event, whether it was late.</summary>
    public (List<ReferenceResult> Results, EventOutcome? Outcome) Step(TraceStep step)
    {
        var results = new List<ReferenceResult>();
        EventOutcome? outcome = null;
        switch (step)
        {
            case EventStep e:
                outcome = OnEvent(e, results);
                break;
            case AdvanceStep a:
                OnAdvance(a.ProcessingTime, results);
                break;
        }

        return (results, outcome);
    }

    private EventOutcome OnEvent(EventStep e, List<ReferenceResult> results)
    {
        var time = definition.TimeMode == TimeMode.ProcessingTime ? e.ProcessingTime : e.EventTime;
        _lastArrival = Math.Max(_lastArrival, e.ProcessingTime);
        var candidate = new Accepted(_arrivals++, time, e.Values, []);

        if (Window.Kind == WindowKind.Session)
        {
            var before = Sessions();
            var after = Sessions(candidate);
            var mine = after.Single(s => s.Events.Contains(candidate));
            if (mine.End + Lateness <= _watermark)
            {
                LateEvents++;
                return EventOutcome.Late;
            }

            _accepted.Add(candidate);
            foreach (var old in before.Where(s => mine.Events.Intersect(s.Events).Any()))
            {
                if (old.Start == mine.Start && old.End == mine.End) continue;
                if (_emissions.TryGetValue((old.Start, old.End), out var emitted) && emitted.Revision > 0)
                {
                    results.Add(Emit(old.Start, old.End, old.Events, ResultKind.Retraction));
                }

                _emissions.Remove((old.Start, old.End));
            }

            if (_emissions.TryGetValue((mine.Start, mine.End), out var current) && current.Fired)
                results.Add(Emit(mine.Start, mine.End, mine.Events, ResultKind.Update));
        }
        else
        {
            var live = WindowsCovering(time).Where(w => w.End + Lateness > _watermark).ToList();
            if (live.Count == 0)
            {
                LateEvents++;
                return EventOutcome.Late;
            }

            _accepted.Add(candidate);
            candidate.Windows.AddRange(live);
            foreach (var (start, end) in live)
            {
                if (_emissions.TryGetValue((start, end), out var current) && current.Fired)
                    results.Add(Emit(start, end, EventsIn(start, end), ResultKind.Update));
            }
        }

        if (time > _maxTime)
        {
            _maxTime = time;
            _watermark = Math.Max(_watermark, time - definition.MaxOutOfOrdernessMs);
        }

        FireAndFreeze(results);
        return EventOutcome.Applied;
    }

    private void OnAdvance(long processingTime, List<ReferenceResult> results)
    {
        long? candidate = null;
        if (definition.TimeMode == TimeMode.ProcessingTime)
            candidate = processingTime - definition.MaxOutOfOrdernessMs;
        else if (definition.IdleTimeoutMs is { } idle && _maxTime != long.MinValue && processingTime - _lastArrival >= idle)
            candidate = _maxTime + (processingTime - _lastArrival) - definition.MaxOutOfOrdernessMs;

        if (candidate > _watermark)
        {
            _watermark = candidate.Value;
            FireAndFreeze(results);
        }

        if (definition.EarlyFiringIntervalMs is { } interval)
        {
            if (_lastEarly == long.MinValue)
            {
                _lastEarly = processingTime;
            }
            else if (processingTime - _lastEarly >= interval)
            {
                _lastEarly = processingTime;
                foreach (var (start, end, events) in CurrentWindows())
                {
                    var emitted = _emissions.GetValueOrDefault((start, end));
                    var expired = end + Lateness <= _watermark;
                    if (expired || emitted is { Fired: true }) continue;
                    var contents = events();
                    if ((emitted?.CountAtEmission ?? 0) != contents.Count)
                        results.Add(Emit(start, end, contents, ResultKind.Partial));
                }
            }
        }
    }

    private void FireAndFreeze(List<ReferenceResult> results)
    {
        foreach (var (start, end, events) in CurrentWindows())
        {
            if (end <= _watermark && _emissions.GetValueOrDefault((start, end)) is not { Fired: true })
                results.Add(Emit(start, end, events(), ResultKind.Final));
        }

        if (Window.Kind == WindowKind.Session)
        {
            foreach (var session in Sessions().Where(s => s.End + Lateness <= _watermark))
                foreach (var e in session.Events)
                    _frozen.Add(e.Arrival);
        }
    }

    /// <summary>Every window that holds at least one accepted event (live sessions only), with a way to list its events.</summary>
    private IEnumerable<(long Start, long End, Func<List<Accepted>> Events)> CurrentWindows()
    {
        if (Window.Kind == WindowKind.Session)
        {
            foreach (var s in Sessions()) yield return (s.Start, s.End, () => s.Events);
            yield break;
        }

        var windows = _accepted.SelectMany(a => a.Windows).Distinct().OrderBy(w => w.Start).ToList();
        foreach (var (start, end) in windows)
            yield return (start, end, () => EventsIn(start, end));
    }

    /// <summary>Fixed windows covering <paramref name="time"/>, found by trying every aligned start near it.</summary>
    private IEnumerable<(long Start, long End)> WindowsCovering(long time)
    {
        var step = Window.Kind == WindowKind.Tumbling ? Window.SizeMs : Window.SlideMs;
        for (var start = time - Window.SizeMs - step; start <= time; start++)
        {
            var aligned = ((start - Window.OffsetMs) % step + step) % step == 0;
            if (aligned && start <= time && time < start + Window.SizeMs) yield return (start, start + Window.SizeMs);
        }
    }

    /// <summary>The events applied to a fixed window: those that covered it and found it still kept.</summary>
    private List<Accepted> EventsIn(long start, long end) =>
        _accepted.Where(a => a.Windows.Contains((start, end))).ToList();

    /// <summary>Sessions of the accepted events not frozen (plus <paramref name="extra"/>): sorted, split where two consecutive times differ by more than the gap.</summary>
    private List<Session> Sessions(Accepted? extra = null)
    {
        var events = _accepted.Where(a => !_frozen.Contains(a.Arrival)).ToList();
        if (extra is not null) events.Add(extra);
        var sessions = new List<Session>();
        foreach (var e in events.OrderBy(a => a.Time).ThenBy(a => a.Arrival))
        {
            if (sessions.Count > 0 && e.Time - sessions[^1].Events[^1].Time <= Window.GapMs)
                sessions[^1].Events.Add(e);
            else
                sessions.Add(new Session([e], Window.GapMs));
        }

        return sessions;
    }

    private ReferenceResult Emit(long start, long end, List<Accepted> events, ResultKind kind)
    {
        var emission = _emissions.GetValueOrDefault((start, end)) ?? new Emission();
        emission.Revision++;
        emission.CountAtEmission = events.Count;
        if (kind is ResultKind.Final or ResultKind.Update) emission.Fired = true;
        _emissions[(start, end)] = emission;
        return new ReferenceResult(start, end, emission.Revision, kind, events.Count, Aggregate(events), _watermark);
    }

    /// <summary>The aggregations of <see cref="TraceGenerator.AllAggregations"/>, computed directly.</summary>
    private static ReferenceValues Aggregate(List<Accepted> events)
    {
        double[] A(int field) => events.Select(e => e.Values[field]).Where(v => !double.IsNaN(v)).ToArray();
        var a = A(0);
        var b = A(1);
        var byTime = events.OrderBy(e => e.Time).ThenBy(e => e.Arrival).ToList();
        var firstA = byTime.Where(e => !double.IsNaN(e.Values[0])).Select(e => e.Values[0]).DefaultIfEmpty(double.NaN).First();
        var lastB = byTime.Where(e => !double.IsNaN(e.Values[1])).Select(e => e.Values[1]).DefaultIfEmpty(double.NaN).Last();
        var sortedB = b.Order().ToArray();
        double Quantile(double q) => sortedB.Length == 0 ? double.NaN : sortedB[(int)Math.Floor(q * (sortedB.Length - 1))];

        return new ReferenceValues(
            Exact:
            [
                events.Count,
                a.Length,
                a.Sum(),
                a.Length == 0 ? double.NaN : a.Min(),
                b.Length == 0 ? double.NaN : b.Max(),
                a.Length == 0 ? double.NaN : a.Sum() / a.Length,
                firstA,
                lastB,
            ],
            Distinct: a.Distinct().Count(),
            Quantiles: [Quantile(0.5), Quantile(0.9), Quantile(1.0)]);
    }

    /// <summary>An accepted event and, for fixed windows, the windows it was applied to (not those already dropped).</summary>
    private sealed record Accepted(int Arrival, long Time, double[] Values, List<(long Start, long End)> Windows);

    /// <summary>A session: its events in time order, and its bounds [first, last + gap).</summary>
    private sealed record Session(List<Accepted> Events, long Gap)
    {
        public long Start => Events[0].Time;
        public long End => Events[^1].Time + Gap;
    }

    private sealed class Emission
    {
        public int Revision;
        public bool Fired;
        public int CountAtEmission;
    }
}

/// <summary>Expected aggregates: exact ones in output order, then the sketch-based ones with their true values.</summary>
public sealed record ReferenceValues(double[] Exact, int Distinct, double[] Quantiles);

public sealed record ReferenceResult(long Start, long End, int Revision, ResultKind Kind, long EventCount, ReferenceValues Values, long Watermark)
{
    public override string ToString() =>
        $"[{Start}, {End}) r{Revision} {Kind} n={EventCount} wm={Watermark} [{string.Join(", ", Values.Exact)}] distinct={Values.Distinct} q=[{string.Join(", ", Values.Quantiles)}]";
}
