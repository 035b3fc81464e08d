using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Windowing.Chaining;

/// <summary>
/// One upstream window's result as a downstream stage receives it: which key and window it is from, what it says
/// (<see cref="ResultKind.Final"/> or <see cref="ResultKind.Update"/>: these values now; <see cref="ResultKind.Retraction"/>:
/// that window no longer exists) and its values, named by the upstream's output names. Its event time is the last
/// instant of its window, so a downstream window aligned with the upstream ones holds exactly the results of the
/// upstream windows it covers. <paramref name="Revision"/> is the upstream result's revision: a contribution at or
/// below the revision already held for its source window changes nothing, so contributions delivered again (or out of
/// order) are harmless; 0 means unnumbered (always taken).
/// </summary>
public sealed record Contribution(string SourceKey, long SourceStart, long SourceEnd, ResultKind Kind, double[] Values, int Revision = 0)
{
    /// <summary>The source window's sketches (<see cref="WindowResult.States"/>), for aggregations that merge them; never changed here.</summary>
    public object?[]? States { get; init; }

    /// <summary>The event time downstream: the source window's last millisecond.</summary>
    public long EventTime => SourceEnd - 1;
}

/// <summary>
/// The persisted state of a <see cref="ChainedStage"/>: its watermark, its count of late contributions and the
/// windows it holds with their contributions. Persist it as a whole and hand it back to a new stage to continue.
/// </summary>
[GenerateSerializer, Alias("pipeline.chained-stage-state")]
public sealed class ChainedStageState
{
    [Id(0)] internal long Watermark = long.MinValue;
    [Id(1)] internal long LateContributions;

    /// <summary>Ordered by start.</summary>
    [Id(2)] internal List<ChainedWindow> Windows = [];
}

/// <summary>One downstream window: its bounds, its revision (0 until it fires) and its contributions, one per source window.</summary>
[GenerateSerializer, Alias("pipeline.chained-window")]
internal sealed class ChainedWindow
{
    [Id(0)] public long Start;
    [Id(1)] public long End;
    [Id(2)] public int Revision;

    /// <summary>In arrival order; change it only through <see cref="Add"/>, <see cref="Replace"/> and <see cref="RemoveAt"/>.</summary>
    [Id(3)] public List<ChainedContribution> Contributions = [];

    // Derived from Contributions (not persisted; rebuilt on first use after a load): where each source window is, and
    // how many are not retracted. A global window holds a contribution per upstream key: 10^5 or more.
    [NonSerialized] private Dictionary<(string Key, long Start, long End), int>? _index;
    [NonSerialized] private int _live;

    /// <summary>Contributions that are not retracted.</summary>
    public int Live
    {
        get
        {
            Index();
            return _live;
        }
    }

    /// <summary>The position of source window (<paramref name="key"/>, <paramref name="start"/>, <paramref name="end"/>), or −1.</summary>
    public int Find(string key, long start, long end) => Index().TryGetValue((key, start, end), out var at) ? at : -1;

    public void Add(ChainedContribution contribution)
    {
        Index()[(contribution.Key, contribution.Start, contribution.End)] = Contributions.Count;
        Contributions.Add(contribution);
        if (!contribution.Retracted) _live++;
    }

    public void Replace(int at, ChainedContribution contribution)
    {
        Index();
        if (Contributions[at].Retracted != contribution.Retracted) _live += contribution.Retracted ? -1 : 1;
        Contributions[at] = contribution;
    }

    /// <summary>Removes the contribution at <paramref name="at"/>, moving the last one into its place.</summary>
    public void RemoveAt(int at)
    {
        var index = Index();
        var removed = Contributions[at];
        var last = Contributions[^1];
        Contributions[at] = last;
        index[(last.Key, last.Start, last.End)] = at;
        Contributions.RemoveAt(Contributions.Count - 1);
        index.Remove((removed.Key, removed.Start, removed.End));
        if (!removed.Retracted) _live--;
    }

    private Dictionary<(string Key, long Start, long End), int> Index()
    {
        if (_index is not null) return _index;
        _index = new Dictionary<(string, long, long), int>(Contributions.Count);
        _live = 0;
        for (var i = 0; i < Contributions.Count; i++)
        {
            var c = Contributions[i];
            _index[(c.Key, c.Start, c.End)] = i;
            if (!c.Retracted) _live++;
        }

        return _index;
    }
}

/// <summary>The latest values one source window contributed, with their revision; <see cref="Retracted"/>: it no longer exists.</summary>
[GenerateSerializer, Immutable, Alias("pipeline.chained-contribution")]
internal sealed record ChainedContribution(
    [property: Id(0)] string Key,
    [property: Id(1)] long Start,
    [property: Id(2)] long End,
    [property: Id(3)] double[] Values,
    [property: Id(4)] int Revision = 0,
    [property: Id(5)] bool Retracted = false,
    [property: Id(6)] object?[]? States = null);

/// <summary>
/// The downstream stage of pipelines that feed pipelines, pure like <see cref="WindowEngine"/>: upstream results in,
/// windows over them out. A window keeps the latest result of each upstream window it covers, keyed by source key and
/// source window, and aggregates over those: an upstream update replaces that window's contribution, a retraction
/// removes it, so a late event upstream changes the downstream result once and is never counted twice. Windows close
/// on the upstream's word (<see cref="AdvanceWatermark"/>: when every upstream contribution to them has arrived or
/// expired), not on the contributions' own times; after that, changes within the allowed lateness emit updates (or a
/// retraction, when a window's last contribution is retracted), and contributions to windows past it are late.
/// Tumbling and hopping windows; the aggregations read the upstream's output names as fields (a count without a field
/// counts contributions).
/// </summary>
public sealed class ChainedStage
{
    private readonly WindowingDefinition _definition;
    private readonly (Aggregator Aggregator, int Input, int Output, int Top, bool Largest, int Merge)[] _aggregations;
    private readonly bool _labelled;
    private readonly int _outputCount;
    private readonly int _maxSlots;
    private readonly ChainedStageState _state;

    /// <param name="definition">The downstream windows and aggregations (tumbling or hopping, event time).</param>
    /// <param name="inputNames">The upstream's output names: the fields the aggregations may read.</param>
    /// <param name="state">A persisted state to continue from (<see cref="State"/> of an earlier stage); null to start empty.</param>
    /// <param name="registry">Aggregation functions (default: the built-in ones).</param>
    /// <param name="upstream">
    /// The upstream's definition, when known: a <c>distinct</c> or <c>quantile</c> aggregation here whose field names an
    /// upstream aggregation of the same function (<c>Distinct("distinct_user")</c> over an upstream <c>Distinct("user")</c>)
    /// merges the upstream windows' sketches (carried in <see cref="Contribution.States"/>) instead of reading values.
    /// </param>
    /// <exception cref="ArgumentException">The definition cannot run as a downstream stage; every problem is named.</exception>
    public ChainedStage(WindowingDefinition definition, IReadOnlyList<string> inputNames, ChainedStageState? state = null, AggregatorRegistry? registry = null,
        WindowingDefinition? upstream = null)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(inputNames);
        registry ??= AggregatorRegistry.Default;
        var problems = definition.Validate(registry).ToList();
        if (definition.Window.Kind == WindowKind.Session) problems.Add("a downstream stage has tumbling or hopping windows, not sessions");
        if (definition.TimeMode != TimeMode.EventTime) problems.Add("a downstream stage runs in event time (its watermark comes from upstream)");
        if (definition.IdleTimeoutMs is not null || definition.EarlyFiringIntervalMs is not null)
            problems.Add("a downstream stage has no idle timeout or early firing of its own (its watermark comes from upstream)");
        var merges = MergedSketches(definition, upstream, registry);
        foreach (var a in definition.Aggregations.Where(a => a.Field is not null && !inputNames.Contains(a.Field, StringComparer.Ordinal) && !merges.ContainsKey(a)))
            problems.Add($"aggregation '{a.OutputName}' reads '{a.Field}', which the upstream does not produce (it produces {string.Join(", ", inputNames)})");
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems), nameof(definition));

        _definition = definition;
        _state = state ?? new ChainedStageState();
        var output = 0;
        _aggregations = definition.Aggregations.Select(a =>
        {
            var aggregator = registry.Create(a);
            var at = output;
            output += aggregator.OutputCount;
            var top = TopAggregate.IsTop(a, out var largest) ? TopAggregate.CountOf(a) : 0;
            return (aggregator, a.Field is null ? -1 : IndexOf(inputNames, a.Field), at, top, largest, merges.GetValueOrDefault(a, -1));
        }).ToArray();
        _labelled = _aggregations.Any(a => a.Top > 0);
        _outputCount = output;
        _maxSlots = Math.Max(1, _aggregations.Max(a => a.Aggregator.ScalarSlots));
        OutputNames = definition.Aggregations.Zip(_aggregations).SelectMany(p => p.Second.Aggregator.OutputNames(p.First)).ToArray();
    }

    /// <summary>Names of the values of every result, in order.</summary>
    public IReadOnlyList<string> OutputNames { get; }

    /// <summary>The live state; persist it to continue later. Mutated by every call.</summary>
    public ChainedStageState State => _state;

    /// <summary>The upstream's word so far: every contribution to windows ending at or before it has arrived or expired.</summary>
    public long Watermark => _state.Watermark;

    /// <summary>Contributions that reached no window still open to them (past the end plus the allowed lateness).</summary>
    public long LateContributions => _state.LateContributions;

    /// <summary>Windows held now (open, or closed and still within the allowed lateness).</summary>
    public int WindowCount => _state.Windows.Count;

    /// <summary>
    /// The lowest watermark at which <see cref="AdvanceWatermark"/> would change something (a window fires, or one is
    /// forgotten); <see cref="long.MaxValue"/> when no window is held.
    /// </summary>
    public long NextDue
    {
        get
        {
            var due = long.MaxValue;
            foreach (var window in _state.Windows)
                due = Math.Min(due, window.Revision == 0 && window.Live > 0 ? window.End : window.End + _definition.AllowedLatenessMs);
            return due;
        }
    }

    /// <summary>
    /// Takes one upstream result. Partial results are previews and contribute nothing. A change to a window that has
    /// fired emits its <see cref="ResultKind.Update"/> (or <see cref="ResultKind.Retraction"/> when nothing is left).
    /// </summary>
    public EventOutcome Apply(Contribution contribution, List<WindowResult> output)
    {
        ArgumentNullException.ThrowIfNull(contribution);
        ArgumentNullException.ThrowIfNull(output);
        if (contribution.Kind == ResultKind.Partial) return EventOutcome.Applied;
        var spec = _definition.Window;
        var time = contribution.EventTime;
        var applied = false;
        // An upstream window that is itself one of this stage's windows (the same windows downstream) goes to that
        // window alone; otherwise to every window its last instant falls in.
        var same = contribution.SourceEnd - contribution.SourceStart == spec.SizeMs && LastStart(contribution.SourceStart) == contribution.SourceStart;
        for (var start = same ? contribution.SourceStart : LastStart(time); start + spec.SizeMs > time; start -= spec.SlideMs)
        {
            var end = start + spec.SizeMs;
            if (Closed(end))
            {
                if (same) break;
                continue;
            }

            applied = true;
            var at = FindWindow(start);
            if (at < 0)
            {
                if (contribution.Kind == ResultKind.Retraction && contribution.Revision == 0) continue;
                at = ~at;
                _state.Windows.Insert(at, new ChainedWindow { Start = start, End = end });
            }

            var window = _state.Windows[at];
            var retraction = contribution.Kind == ResultKind.Retraction;
            var entry = new ChainedContribution(contribution.SourceKey, contribution.SourceStart, contribution.SourceEnd,
                retraction ? [] : contribution.Values, contribution.Revision, retraction, retraction ? null : contribution.States);
            var found = window.Find(entry.Key, entry.Start, entry.End);
            bool changed;
            if (found >= 0 && contribution.Revision > 0 && window.Contributions[found].Revision >= contribution.Revision)
            {
                changed = false; // this revision (or a later one) is held already
            }
            else if (found >= 0)
            {
                var held = window.Contributions[found];
                changed = held.Retracted != retraction || !held.Values.AsSpan().SequenceEqual(entry.Values);
                if (retraction && contribution.Revision == 0) window.RemoveAt(found);
                else window.Replace(found, entry);
            }
            else
            {
                changed = !retraction;
                // A numbered retraction is kept (as a tombstone) so that an earlier revision delivered again later does not bring the window back.
                if (!retraction || contribution.Revision > 0) window.Add(entry);
            }

            // A window the watermark has passed already (a contribution within the allowed lateness) fires at once.
            if (changed && (window.Revision > 0 || (window.End <= _state.Watermark && window.Live > 0))) Emit(window, output);
            if (window.Contributions.Count == 0 && window.Revision == 0) _state.Windows.RemoveAt(at);
            if (same) break;
        }

        if (applied) return EventOutcome.Applied;
        _state.LateContributions++;
        return EventOutcome.Late;
    }

    /// <summary>
    /// Moves the watermark (never back): windows ending at or before it fire (<see cref="ResultKind.Final"/>, in order
    /// of their end), and windows past their end plus the allowed lateness are forgotten.
    /// </summary>
    public void AdvanceWatermark(long watermark, List<WindowResult> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (watermark <= _state.Watermark) return;
        _state.Watermark = watermark;
        foreach (var window in _state.Windows.Where(w => w.Revision == 0 && w.End <= watermark && w.Live > 0).OrderBy(w => w.End).ThenBy(w => w.Start).ToList())
            Emit(window, output);
        _state.Windows.RemoveAll(w => Closed(w.End));
    }

    /// <summary>The windows held now, as <see cref="ResultKind.Partial"/> results for those not fired yet.</summary>
    public IEnumerable<WindowResult> Snapshot() =>
        _state.Windows.Select(w => Result(w, w.Revision == 0 ? ResultKind.Partial : w.Live == 0 ? ResultKind.Retraction : ResultKind.Update, w.Revision));

    /// <summary>The index of the window starting at <paramref name="start"/>, or the complement of where it would go.</summary>
    private int FindWindow(long start)
    {
        int low = 0, high = _state.Windows.Count - 1;
        while (low <= high)
        {
            var middle = (low + high) >>> 1;
            var at = _state.Windows[middle].Start;
            if (at == start) return middle;
            if (at < start) low = middle + 1;
            else high = middle - 1;
        }

        return ~low;
    }

    private bool Closed(long end) => _state.Watermark != long.MinValue && end + _definition.AllowedLatenessMs <= _state.Watermark;

    private long LastStart(long time)
    {
        var spec = _definition.Window;
        var shifted = time - spec.OffsetMs;
        return shifted - (((shifted % spec.SlideMs) + spec.SlideMs) % spec.SlideMs) + spec.OffsetMs;
    }

    private void Emit(ChainedWindow window, List<WindowResult> output)
    {
        window.Revision++;
        var kind = window.Revision == 1 ? ResultKind.Final : window.Live == 0 ? ResultKind.Retraction : ResultKind.Update;
        output.Add(Result(window, kind, window.Revision));
    }

    private WindowResult Result(ChainedWindow window, ResultKind kind, int revision)
    {
        var values = new double[_outputCount];
        var labels = _labelled ? new string?[_outputCount] : null;
        Span<double> buffer = stackalloc double[_maxSlots];
        foreach (var (aggregator, input, at, top, largest, merge) in _aggregations)
        {
            if (merge >= 0)
            {
                // The upstream windows' sketches merged: the answer over all their events, not over their answers.
                object? merged = null;
                var none = buffer[..aggregator.ScalarSlots];
                none.Clear();
                aggregator.Init(none, ref merged);
                foreach (var contributed in window.Contributions)
                {
                    if (!contributed.Retracted && contributed.States is { } states && merge < states.Length && states[merge] is { } sketch)
                        aggregator.Merge(none, ref merged, [], sketch);
                }

                aggregator.Result(none, merged, values.AsSpan(at, aggregator.OutputCount));
                continue;
            }

            if (top > 0)
            {
                // The N best contributions with the keys that made them; ties go to the smaller key, so every replay
                // of the same contributions labels them the same way.
                var ranked = window.Contributions.Where(c => !c.Retracted && !double.IsNaN(c.Values[input]))
                    .OrderBy(c => largest ? -c.Values[input] : c.Values[input]).ThenBy(c => c.Key, StringComparer.Ordinal).Take(top).ToList();
                for (var i = 0; i < top; i++)
                {
                    values[at + i] = i < ranked.Count ? ranked[i].Values[input] : double.NaN;
                    labels![at + i] = i < ranked.Count ? ranked[i].Key : null;
                }

                continue;
            }

            var slots = buffer[..aggregator.ScalarSlots];
            slots.Clear();
            object? state = null;
            aggregator.Init(slots, ref state);
            foreach (var contributed in window.Contributions)
            {
                if (contributed.Retracted) continue;
                var value = input < 0 ? 1 : contributed.Values[input];
                if (!double.IsNaN(value)) aggregator.Add(slots, ref state, contributed.End - 1, value);
            }

            aggregator.Result(slots, state, values.AsSpan(at, aggregator.OutputCount));
        }

        return new WindowResult(window.Start, window.End, revision, kind, window.Live, values, _state.Watermark, labels);
    }

    /// <summary>The functions whose sketches a downstream stage merges.</summary>
    public static readonly IReadOnlySet<string> MergeableSketches = new HashSet<string>(["distinct", "quantile"], StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// The aggregations of <paramref name="definition"/> that merge upstream sketches, with the object index of the
    /// upstream aggregation they merge: same function (<c>distinct</c> or <c>quantile</c>), field = that aggregation's output name.
    /// </summary>
    public static Dictionary<AggregationSpec, int> MergedSketches(WindowingDefinition definition, WindowingDefinition? upstream, AggregatorRegistry? registry = null)
    {
        var merges = new Dictionary<AggregationSpec, int>(ReferenceEqualityComparer.Instance);
        if (upstream is null) return merges;
        WindowPlan plan;
        try
        {
            plan = WindowPlan.For(upstream, registry);
        }
        catch (ArgumentException)
        {
            return merges;
        }

        foreach (var a in definition.Aggregations)
        {
            if (a.Field is null || !MergeableSketches.Contains(a.Function)) continue;
            for (var u = 0; u < upstream.Aggregations.Length; u++)
            {
                var source = upstream.Aggregations[u];
                if (string.Equals(source.OutputName, a.Field, StringComparison.Ordinal) && string.Equals(source.Function, a.Function, StringComparison.OrdinalIgnoreCase) &&
                    plan.Aggregators[u].ObjectIndex >= 0)
                    merges[a] = plan.Aggregators[u].ObjectIndex;
            }
        }

        return merges;
    }

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (var i = 0; i < names.Count; i++)
            if (string.Equals(names[i], name, StringComparison.Ordinal)) return i;
        return -1;
    }
}
