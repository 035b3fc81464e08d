using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Windowing;

/// <summary>
/// The event-time windowing engine for one key. Single-threaded, pure: no I/O and no clock of its own; processing
/// time is passed in. Results are appended to the caller's list.
/// </summary>
/// <remarks>
/// Semantics (pinned by tests against a brute-force reference):
/// <list type="bullet">
/// <item>Windows are half-open <c>[start, end)</c>. A window fires its <see cref="ResultKind.Final"/> result when the
/// watermark reaches its end (<c>watermark ≥ end</c>), and is dropped when <c>watermark ≥ end + allowed lateness</c>.</item>
/// <item>Watermark = highest event time seen − max out-of-orderness; it never moves backwards. It is updated after
/// the event that raised it has been applied.</item>
/// <item>An event is late when every window it belongs to has been dropped; it is then not applied, counted, and
/// reported as <see cref="EventOutcome.Late"/>. An event for a fired window that is still held produces an
/// <see cref="ResultKind.Update"/> immediately.</item>
/// <item>Sessions: an event joins a held session when it is at most the gap away from one of its events; a session's
/// bounds are <c>[first event, last event + gap)</c>. When an emitted session grows or merges, its old bounds are
/// retracted and the merged session is emitted under its new bounds as a new window (revision 1).</item>
/// </list>
/// </remarks>
public sealed class WindowEngine
{
    private readonly WindowPlan _plan;
    private readonly WindowingDefinition _definition;
    private readonly CompiledAggregator[] _aggregators;
    private readonly int _slotCount;
    private readonly int _objectCount;
    private readonly int _outputCount;
    private readonly int _fieldCount;
    private readonly WindowKind _kind;
    private readonly bool _processingTime;
    private readonly long _size;
    private readonly long _step;
    private readonly long _offset;
    private readonly long _gap;
    private readonly long _disorder;
    private readonly long _lateness;
    private readonly long _idleTimeout;
    private readonly long _earlyInterval;
    private readonly Stack<WindowSlot> _pool = new();
    private readonly WindowState _state;
    private int _cursor;
    private long _nextDue = long.MaxValue;
    private object? _noObject;

    /// <summary>Creates an engine for <paramref name="definition"/>, continuing from <paramref name="state"/> when given.</summary>
    /// <exception cref="ArgumentException">The definition is invalid, or the state was written under another layout.</exception>
    public WindowEngine(WindowingDefinition definition, WindowState? state = null, AggregatorRegistry? registry = null)
        : this(WindowPlan.For(definition, registry), state)
    {
    }

    /// <summary>Creates an engine that runs a compiled <paramref name="plan"/>, continuing from <paramref name="state"/> when given.</summary>
    /// <exception cref="ArgumentException">The state was written under another layout.</exception>
    public WindowEngine(WindowPlan plan, WindowState? state = null)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var definition = plan.Definition;
        _plan = plan;
        _definition = definition;
        _aggregators = plan.Aggregators;
        _slotCount = plan.SlotCount;
        _objectCount = plan.ObjectCount;
        _outputCount = plan.OutputCount;
        _fieldCount = plan.Fields.Count;
        var window = definition.Window;
        _kind = window.Kind;
        _size = window.SizeMs;
        _step = window.Step;
        _offset = window.OffsetMs;
        _gap = window.GapMs;
        _processingTime = definition.TimeMode == TimeMode.ProcessingTime;
        _disorder = definition.MaxOutOfOrdernessMs;
        _lateness = definition.AllowedLatenessMs;
        _idleTimeout = definition.IdleTimeoutMs ?? -1;
        _earlyInterval = definition.EarlyFiringIntervalMs ?? -1;

        if (state is null)
        {
            _state = new WindowState { Layout = plan.Layout };
        }
        else
        {
            if (state.Layout != plan.Layout)
            {
                throw new ArgumentException(
                    $"window state was written for layout '{state.Layout}' but the pipeline now has '{plan.Layout}'; " +
                    "a pipeline's window shape and aggregations cannot change under existing state", nameof(state));
            }

            _state = state;
            RecomputeNextDue();
        }
    }

    /// <summary>The definition this engine runs.</summary>
    public WindowingDefinition Definition => _definition;

    /// <summary>The names of the values in every <see cref="WindowResult.Values"/>, in order.</summary>
    public IReadOnlyList<string> OutputNames => _plan.OutputNames;

    /// <summary>The fields whose values <see cref="Process"/> expects, in order.</summary>
    public IReadOnlyList<string> Fields => _plan.Fields;

    /// <summary>The live state; persist it to continue later. Mutated by every call.</summary>
    public WindowState State => _state;

    /// <summary>
    /// Whether results carry the window's aggregator objects (<see cref="WindowResult.States"/>: the live objects,
    /// which later events change; copy them before keeping them): for a pipeline whose sketches a chained pipeline merges.
    /// </summary>
    public bool EmitStates { get; set; }

    /// <summary>
    /// Applies one event. <paramref name="values"/> has one entry per <see cref="Fields"/>; NaN marks a missing value,
    /// which aggregations of that field skip. Results that become due (finals, updates, retractions) are appended to
    /// <paramref name="output"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The event time is outside <see cref="EventTimeRange"/>.</exception>
    /// <exception cref="ArgumentException">The number of values is not the number of fields.</exception>
    public EventOutcome Process(long eventTime, ReadOnlySpan<double> values, long processingTime, List<WindowResult> output)
    {
        var time = _processingTime ? processingTime : eventTime;
        if (!EventTimeRange.Contains(time))
            throw new ArgumentOutOfRangeException(nameof(eventTime), time, $"event time must be within [{EventTimeRange.MinMs}, {EventTimeRange.MaxMs}] Unix milliseconds");
        if (values.Length != _fieldCount)
            throw new ArgumentException($"expected {_fieldCount} field values ({string.Join(", ", Fields)}), got {values.Length}", nameof(values));

        var state = _state;
        if (processingTime > state.LastArrival) state.LastArrival = processingTime;

        var applied = _kind switch
        {
            WindowKind.Tumbling => AddTumbling(time, values, output),
            WindowKind.Hopping => AddHopping(time, values, output),
            _ => AddSession(time, values, output),
        };

        if (!applied)
        {
            state.LateEvents++;
            return EventOutcome.Late;
        }

        state.AppliedEvents++;
        if (time > state.MaxEventTime)
        {
            state.MaxEventTime = time;
            var watermark = time - _disorder;
            if (watermark > state.Watermark) state.Watermark = watermark;
        }

        if (state.Watermark >= _nextDue) FireDue(output);
        return EventOutcome.Applied;
    }

    /// <summary>
    /// Counts the idle timeout from <paramref name="processingTime"/>: the last arrival recorded in the state was
    /// measured by another clock (another silo, or before a restart), and comparing it with this one would close
    /// windows early (a clock ahead) or late (a clock behind). Call it when the state is loaded.
    /// </summary>
    public void RestartClock(long processingTime)
    {
        if (_state.LastArrival != long.MinValue) _state.LastArrival = processingTime;
    }

    /// <summary>
    /// Lets processing time pass: in processing-time mode the watermark follows the clock; in event-time mode an idle
    /// key (no event for the idle timeout) advances as if event time followed processing time since its last event.
    /// Then, with early firing, emits partial results of changed open windows once per interval.
    /// </summary>
    public void Advance(long processingTime, List<WindowResult> output)
    {
        var state = _state;
        var candidate = long.MinValue;
        if (_processingTime)
        {
            candidate = processingTime - _disorder;
        }
        else if (_idleTimeout > 0 && state.MaxEventTime != long.MinValue && processingTime - state.LastArrival >= _idleTimeout)
        {
            candidate = state.MaxEventTime + (processingTime - state.LastArrival) - _disorder;
        }

        if (candidate > state.Watermark)
        {
            state.Watermark = candidate;
            if (candidate >= _nextDue) FireDue(output);
        }

        if (_earlyInterval > 0)
        {
            if (state.LastEarlyFiring == long.MinValue)
            {
                state.LastEarlyFiring = processingTime;
            }
            else if (processingTime - state.LastEarlyFiring >= _earlyInterval)
            {
                state.LastEarlyFiring = processingTime;
                foreach (var window in state.Windows)
                {
                    if ((window.Flags & (WindowSlotFlags.Fired | WindowSlotFlags.Dirty)) == WindowSlotFlags.Dirty)
                        Emit(window, ResultKind.Partial, output);
                }
            }
        }
    }

    /// <summary>
    /// The earliest processing time at which <see cref="Advance"/> would emit something, move the watermark onto a
    /// window or drop one; <see cref="long.MaxValue"/> when time alone changes nothing (no windows held, or nothing in
    /// the definition that runs on processing time). Earlier calls of <see cref="Advance"/> change nothing, so a caller
    /// need not call it before then; every <see cref="Process"/> and <see cref="Advance"/> may move it.
    /// </summary>
    public long NextAdvanceDue
    {
        get
        {
            var state = _state;
            var due = long.MaxValue;
            if (_nextDue != long.MaxValue)
            {
                if (_processingTime)
                {
                    // The watermark is the clock − the disorder: it reaches the next due end at due end + disorder.
                    due = _nextDue + _disorder;
                }
                else if (_idleTimeout > 0 && state.MaxEventTime != long.MinValue)
                {
                    // Quiet for the idle timeout, and the idle watermark (highest event time + time since the last
                    // arrival − disorder) at the next due end.
                    due = state.LastArrival + Math.Max(_idleTimeout, _nextDue + _disorder - state.MaxEventTime);
                }
            }

            if (_earlyInterval > 0)
            {
                foreach (var window in state.Windows)
                {
                    if ((window.Flags & (WindowSlotFlags.Fired | WindowSlotFlags.Dirty)) != WindowSlotFlags.Dirty) continue;
                    // The first call only starts the interval: due at once.
                    due = Math.Min(due, state.LastEarlyFiring == long.MinValue ? long.MinValue : state.LastEarlyFiring + _earlyInterval);
                    break;
                }
            }

            return due;
        }
    }

    /// <summary>
    /// Moves the event-time watermark to <paramref name="watermark"/> when that is later (it never moves back), as a
    /// watermark from outside the key would: windows ending at or before it fire, and windows past their allowed
    /// lateness are dropped. A pipeline that feeds others moves each key to its partition's watermark this way.
    /// </summary>
    public void AdvanceWatermark(long watermark, List<WindowResult> output)
    {
        if (_processingTime || watermark <= _state.Watermark) return;
        _state.Watermark = watermark;
        if (watermark >= _nextDue) FireDue(output);
    }

    /// <summary>
    /// The current value of every window held, oldest first, without emitting anything: open windows as
    /// <see cref="ResultKind.Partial"/>, fired ones as <see cref="ResultKind.Final"/>, each with its last emitted revision.
    /// </summary>
    public IEnumerable<WindowResult> Snapshot()
    {
        foreach (var window in _state.Windows)
        {
            var kind = window.Fired ? ResultKind.Final : ResultKind.Partial;
            yield return new WindowResult(window.Start, window.End, window.Revision, kind, window.Count, ComputeValues(window), _state.Watermark);
        }
    }

    private bool AddTumbling(long time, ReadOnlySpan<double> values, List<WindowResult> output)
    {
        var windows = _state.Windows;
        var cursor = _cursor;
        WindowSlot slot;
        if ((uint)cursor < (uint)windows.Count && time >= (slot = windows[cursor]).Start && time < slot.End)
        {
            Apply(slot, time, values, output);
            return true;
        }

        var start = AlignDown(time);
        var end = start + _size;
        if (end + _lateness <= _state.Watermark) return false;
        _cursor = FindOrCreate(start, end, -1);
        Apply(windows[_cursor], time, values, output);
        return true;
    }

    private bool AddHopping(long time, ReadOnlySpan<double> values, List<WindowResult> output)
    {
        var windows = _state.Windows;
        var applied = false;
        var hint = _cursor;
        var watermark = _state.Watermark;
        for (var start = AlignDown(time); start > time - _size; start -= _step)
        {
            var end = start + _size;
            if (end + _lateness <= watermark) break; // earlier windows end earlier still
            var index = FindOrCreate(start, end, hint);
            if (!applied) _cursor = index;
            Apply(windows[index], time, values, output);
            hint = index - 1;
            applied = true;
        }

        return applied;
    }

    private bool AddSession(long time, ReadOnlySpan<double> values, List<WindowResult> output)
    {
        var windows = _state.Windows;
        var gap = _gap;

        // The first held session that ends (last event + gap) at or after the event is the only one it can join first.
        int lo = 0, hi = windows.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (windows[mid].End < time) lo = mid + 1;
            else hi = mid;
        }

        // It joins that session when at most the gap before its first event; it bridges to the next one likewise.
        if (lo == windows.Count || windows[lo].Start - gap > time)
        {
            var end = time + gap;
            if (end + _lateness <= _state.Watermark) return false;
            var slot = Rent(time, end);
            windows.Insert(lo, slot);
            if (end < _nextDue) _nextDue = end;
            Apply(slot, time, values, output);
            return true;
        }

        var session = windows[lo];
        var bridge = lo + 1 < windows.Count && windows[lo + 1].Start - gap <= time ? windows[lo + 1] : null;
        var first = Math.Min(session.Start, time);
        var last = Math.Max(session.End - gap, Math.Max(time, bridge is null ? long.MinValue : bridge.End - gap));
        if (bridge is not null || first != session.Start || last + gap != session.End)
        {
            // The session changes bounds: what was emitted under the old bounds is retracted.
            if (session.Revision > 0) Emit(session, ResultKind.Retraction, output);
            if (bridge is not null)
            {
                if (bridge.Revision > 0) Emit(bridge, ResultKind.Retraction, output);
                MergeInto(session, bridge);
                windows.RemoveAt(lo + 1);
                Return(bridge);
            }

            session.Start = first;
            session.End = last + gap;
            session.Revision = 0;
            session.Flags = WindowSlotFlags.None;
            // Its old end may have been the next due one: recomputed, so that NextAdvanceDue is never early.
            RecomputeNextDue();
        }

        Apply(session, time, values, output);
        return true;
    }

    private void Apply(WindowSlot window, long time, ReadOnlySpan<double> values, List<WindowResult> output)
    {
        window.Count++;
        var slots = window.Slots.AsSpan();
        foreach (ref readonly var aggregator in _aggregators.AsSpan())
        {
            var value = double.NaN;
            if (aggregator.Field >= 0)
            {
                value = values[aggregator.Field];
                if (double.IsNaN(value)) continue;
            }

            ref var objectState = ref aggregator.ObjectIndex >= 0 ? ref window.Objects![aggregator.ObjectIndex] : ref _noObject;
            aggregator.Aggregator.Add(slots.Slice(aggregator.SlotOffset, aggregator.SlotCount), ref objectState, time, value);
        }

        window.Flags |= WindowSlotFlags.Dirty;
        if (window.Fired) Emit(window, ResultKind.Update, output);
    }

    private void MergeInto(WindowSlot into, WindowSlot other)
    {
        into.Count += other.Count;
        var slots = into.Slots.AsSpan();
        foreach (ref readonly var aggregator in _aggregators.AsSpan())
        {
            ref var objectState = ref aggregator.ObjectIndex >= 0 ? ref into.Objects![aggregator.ObjectIndex] : ref _noObject;
            var otherObject = aggregator.ObjectIndex >= 0 ? other.Objects![aggregator.ObjectIndex] : null;
            aggregator.Aggregator.Merge(
                slots.Slice(aggregator.SlotOffset, aggregator.SlotCount),
                ref objectState,
                other.Slots.AsSpan(aggregator.SlotOffset, aggregator.SlotCount),
                otherObject);
        }
    }

    /// <summary>Fires every unfired window whose end the watermark has reached and drops those past the lateness.</summary>
    private void FireDue(List<WindowResult> output)
    {
        var windows = _state.Windows;
        var watermark = _state.Watermark;
        var expired = 0;
        for (var i = 0; i < windows.Count; i++)
        {
            var window = windows[i];
            if (window.End > watermark) break; // held windows are ordered by end as well as start
            if (!window.Fired) Emit(window, ResultKind.Final, output);
            if (window.End + _lateness <= watermark) expired = i + 1;
        }

        if (expired > 0)
        {
            for (var i = 0; i < expired; i++) Return(windows[i]);
            windows.RemoveRange(0, expired);
        }

        RecomputeNextDue();
    }

    private void RecomputeNextDue()
    {
        var windows = _state.Windows;
        if (windows.Count == 0)
        {
            _nextDue = long.MaxValue;
            return;
        }

        var due = windows[0].End + _lateness;
        foreach (var window in windows)
        {
            if (!window.Fired)
            {
                due = Math.Min(due, window.End);
                break;
            }
        }

        _nextDue = due;
    }

    private void Emit(WindowSlot window, ResultKind kind, List<WindowResult> output)
    {
        window.Revision++;
        window.Flags &= ~WindowSlotFlags.Dirty;
        if (kind is ResultKind.Final or ResultKind.Update) window.Flags |= WindowSlotFlags.Fired;
        output.Add(new WindowResult(window.Start, window.End, window.Revision, kind, window.Count, ComputeValues(window), _state.Watermark,
            States: EmitStates && window.Objects is { } objects ? (object?[])objects.Clone() : null));
    }

    private double[] ComputeValues(WindowSlot window)
    {
        var values = new double[_outputCount];
        var slots = window.Slots;
        foreach (ref readonly var aggregator in _aggregators.AsSpan())
        {
            var objectState = aggregator.ObjectIndex >= 0 ? window.Objects![aggregator.ObjectIndex] : null;
            aggregator.Aggregator.Result(
                slots.AsSpan(aggregator.SlotOffset, aggregator.SlotCount),
                objectState,
                values.AsSpan(aggregator.OutputOffset, aggregator.OutputCount));
        }

        return values;
    }

    /// <summary>Index of the window starting at <paramref name="start"/>, created when missing. Windows stay sorted by start.</summary>
    private int FindOrCreate(long start, long end, int hint)
    {
        var windows = _state.Windows;
        if ((uint)hint < (uint)windows.Count && windows[hint].Start == start) return hint;

        int lo = 0, hi = windows.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            var midStart = windows[mid].Start;
            if (midStart == start) return mid;
            if (midStart < start) lo = mid + 1;
            else hi = mid;
        }

        windows.Insert(lo, Rent(start, end));
        if (end < _nextDue) _nextDue = end;
        return lo;
    }

    private WindowSlot Rent(long start, long end)
    {
        if (!_pool.TryPop(out var window))
        {
            window = new WindowSlot
            {
                Slots = new double[_slotCount],
                Objects = _objectCount > 0 ? new object?[_objectCount] : null,
            };
        }

        window.Start = start;
        window.End = end;
        window.Count = 0;
        window.Revision = 0;
        window.Flags = WindowSlotFlags.None;
        var slots = window.Slots.AsSpan();
        foreach (ref readonly var aggregator in _aggregators.AsSpan())
        {
            ref var objectState = ref aggregator.ObjectIndex >= 0 ? ref window.Objects![aggregator.ObjectIndex] : ref _noObject;
            aggregator.Aggregator.Init(slots.Slice(aggregator.SlotOffset, aggregator.SlotCount), ref objectState);
        }

        return window;
    }

    private void Return(WindowSlot window)
    {
        if (window.Objects is { } objects) Array.Clear(objects);
        if (_pool.Count < 64) _pool.Push(window);
    }

    private long AlignDown(long time)
    {
        var shifted = time - _offset;
        var remainder = shifted % _step;
        if (remainder < 0) remainder += _step;
        return time - remainder;
    }
}
