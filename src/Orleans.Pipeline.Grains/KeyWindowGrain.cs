using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Chaining;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Serialization;
using Orleans.Streams;
using Orleans.Pipeline.Storage;

namespace Orleans.Pipeline.Grains;

/// <summary>
/// One (pipeline, key): owns the key's window state. Its partition hands it slices of partition items in delivery
/// order; it applies each once (a slice at or below the last stored delivery is a repeat), runs the windowing engine,
/// and stores its state together with what fired (<see cref="IKeyStateStore"/>: group-committed, results and state in
/// one transaction in cluster mode) before it returns, so the partition acknowledges its item only once every key
/// has stored it. While the key holds windows that time alone closes, it leaves word with its silo's
/// <see cref="KeyWakeups"/> when they are next due and is woken then (no timer per key); the grain deactivates when
/// idle, its state stored, and the wake activates it again. Placed on the silo of the partition that first calls it: a partition's
/// keys live beside it, so handing out slices costs no network hop. Immovable: when its silo shuts down the key
/// stores its state and deactivates rather than migrating (it would read its state again anyway), and a single
/// silo's shutdown does not try to place a hundred thousand keys elsewhere.
/// </summary>
[PreferLocalPlacement]
[Immovable]
internal sealed partial class KeyWindowGrain(
    PipelineCatalog catalog,
    KeyGrainOptions options,
    IKeyStateStore store,
    Serializer<KeyGrainState> serializer,
    Serializer<object?[]> stateCopier,
    IResultSink sink,
    LiveResults live,
    PipelineLatencies latencies,
    PartitionLags lags,
    ChainWatermarks chainWatermarks,
    ChainForwarder forwarder,
    KeyWakeups wakeups,
    [FromKeyedServices(PipelineTime.Key)] TimeProvider time,
    ILogger<KeyWindowGrain> logger)
    : Grain, IKeyWindowGrain, IRemindable
{
    /// <summary>The reminder that reactivates a key whose windows only time can close.</summary>
    internal const string CloseWindowsReminder = "close-windows";

    /// <summary>Reminder registrations in flight per process at most.</summary>
    private static readonly SemaphoreSlim ReminderRegistrations = new(4, 4);

    private readonly List<WindowResult> _output = [];
    private readonly List<LateEventRecord> _late = [];
    private readonly List<DeadLetter> _deadLetters = [];
    private KeyGrainState _state = new();
    private long _version;
    private string _pipeline = "";
    private string _key = "";
    private int _partition;
    private PipelineDefinition? _definition;
    private WindowEngine? _engine;

    /// <summary>For a key of a chained pipeline: its stage (and no engine).</summary>
    private ChainedStage? _stage;

    /// <summary>Whether the key's pipeline feeds others: its results are forwarded, and its last ones kept for a redelivery.</summary>
    private bool _feeds;

    /// <summary>At most this many results are kept for a redelivery (timer steps add to a delivery's).</summary>
    private const int MaxLastFired = 4096;
    /// <summary>Whether this activation left word with <see cref="KeyWakeups"/>.</summary>
    private bool _wakeLeft;
    private bool _reminderRegistered;
    private double[] _row = [];
    private string[] _mapFields = [];
    private int[] _map = [];
    private bool _unsaved;

    /// <summary>Memory no longer matches what was applied in full (an apply threw half-way, or a write failed): never store it.</summary>
    private bool _discard;
    private long _lastWriteTimestamp;
    private int _appliedInStep;
    private bool _counted;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        (_pipeline, _key) = PipelineNames.Split(this.GetPrimaryKeyString());
        _definition = catalog.Find(_pipeline);
        if (_definition is null)
        {
            LogUnknownPipeline(_pipeline);
            return;
        }

        _partition = PipelineNames.PartitionOf(_key, _definition.Partitions);

        if (await store.ReadAsync(_pipeline, _key, cancellationToken) is { } stored)
        {
            _state = serializer.Deserialize(stored.Payload) ?? new KeyGrainState();
            _version = stored.Version;
        }

        _lastWriteTimestamp = time.GetTimestamp() - (long)(Random.Shared.NextDouble() * options.StateWriteInterval.TotalSeconds * time.TimestampFrequency);
        if (_definition.Input is { } input)
        {
            // A key of a chained pipeline: upstream results in, through the downstream stage.
            var upstream = catalog.Find(input.Pipeline)!;
            _stage = new ChainedStage(_definition.Windowing, upstream.OutputNames(catalog.Registry), _state.Chained, catalog.Registry, upstream.Windowing);
            _state.Chained = _stage.State;
            PipelineMeter.ActiveKeys.Add(1, PipelineMeter.Pipeline(_pipeline));
            _counted = true;
            await LeaveWordAsync();
            return;
        }

        _feeds = forwarder.Feeds(_pipeline);
        if (_feeds && _state.LastFired is { Count: > 0 } last)
        {
            // The last results may not have reached the pipelines this one feeds (a crash right after they were
            // stored): forwarded again; taking them twice changes nothing downstream.
            await ForwardOwnAsync(last);
        }

        _engine = new WindowEngine(_definition.Windowing, _state.Engine, catalog.Registry) { EmitStates = _feeds && forwarder.NeedsStates(_pipeline) };
        _state.Engine = _engine.State;
        // The stored arrival time is another silo's clock (or this one's before a restart): a skewed clock must not
        // make the idle timeout close windows at once, and events then late.
        _engine.RestartClock(Clock());
        _row = new double[_engine.Fields.Count];
        // Write-behind counts from activation (above): a key's first step does not store a state the store already has
        // (or, for a new key, one event's worth). The first handover comes within an interval, at a random point of it,
        // so keys activated together (a burst of new keys) do not all hand their state over in the same moment ever after.
        PipelineMeter.ActiveKeys.Add(1, PipelineMeter.Pipeline(_pipeline));
        _counted = true;
        await LeaveWordAsync();
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName != CloseWindowsReminder) return;
        _reminderRegistered = true;
        // Activation left word with the silo if windows need it; this tick also closes what time alone can close.
        if (_engine is not null || _stage is not null) await WakeAsync();
        if ((_engine is null && _stage is null) || !WindowsNeedTime)
        {
            if (await this.GetReminder(reminderName) is { } reminder) await this.UnregisterReminder(reminder);
            _reminderRegistered = false;
        }
    }

    /// <summary>Whether the key holds windows that time alone can close (idle timeout, early firing, processing time).</summary>
    private bool WindowsNeedTime
    {
        get
        {
            if (_stage is not null) return _stage.WindowCount > 0;
            var windowing = _definition!.Windowing;
            return _engine!.State.WindowCount > 0 &&
                (windowing.IdleTimeoutMs is not null || windowing.EarlyFiringIntervalMs is not null || windowing.TimeMode == TimeMode.ProcessingTime);
        }
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_counted)
        {
            PipelineMeter.ActiveKeys.Add(-1, PipelineMeter.Pipeline(_pipeline));
            if (reason.ReasonCode == DeactivationReasonCode.HighMemoryPressure) PipelineMeter.KeysShed.Add(1, PipelineMeter.Pipeline(_pipeline));
            _counted = false;
        }

        // Write-behind (embedded) at shutdown: the store takes the state at once and writes everything pending
        // before it stops (it is disposed after the grains). Waiting here for each key's own row would run a million
        // keys stopping together into Orleans' deactivation timeout.
        var durable = options.StateWriteInterval <= TimeSpan.Zero || reason.ReasonCode != DeactivationReasonCode.ShuttingDown;
        if (_unsaved && !_discard) await WriteStateAsync(durable);
    }

    public async Task<ResultBatch?> ApplyAsync(KeySlice slice)
    {
        ClearStep();
        if (_engine is null)
        {
            // Not applied, but not lost without a trace either.
            var (reason, detail) = _stage is not null
                ? ("chained-pipeline", $"pipeline '{_pipeline}' reads pipeline '{_definition!.Input!.Pipeline}'; {slice.Count} events published to it were not applied")
                : ("unknown-pipeline", $"this silo runs no pipeline '{_pipeline}'; {slice.Count} events not applied");
            _deadLetters.Add(new DeadLetter(slice.ProducerId, slice.Sequence, -1, reason, detail));
            await sink.WriteAsync(new SinkWrite(_pipeline, _key, [], [], _deadLetters.ToArray()));
            PipelineMeter.DeadLetters.Add(1, PipelineMeter.Pipeline(_pipeline), new("reason", reason));
            return null;
        }

        if (slice.Partition == _state.Partition && slice.Delivery <= _state.LastDelivery)
        {
            _state.DuplicateSlices++;
            PipelineMeter.Duplicates.Add(1, PipelineMeter.Pipeline(_pipeline), new("level", "slice"));
            // The same delivery again (its partition stopped before it was done): what it fired is handed out again, for
            // the pipelines this one feeds.
            if (_feeds && slice.Delivery == _state.LastDelivery && _state.LastFired is { Count: > 0 } lastFired)
                return new ResultBatch(_pipeline, _key, [.. lastFired], [], Replayed: true);
            return null;
        }

        using var activity = PipelineTracing.Source.StartActivity("pipeline.key.apply", ActivityKind.Internal, slice.TraceParent);
        activity?.SetTag("pipeline", _pipeline);
        activity?.SetTag("pipeline.events", slice.Count);
        try
        {
            Apply(slice);
            // A feeding pipeline's keys close their windows with their partition's watermark.
            if (slice.AdvanceTo != long.MinValue) _engine.AdvanceWatermark(slice.AdvanceTo, _output);
        }
        catch (Exception e)
        {
            // Half of the slice may be in the windows: drop this activation without storing it, so the slice (when
            // its item is delivered again) is applied to the stored state, whole or not at all.
            _discard = true;
            DeactivateOnIdle();
            LogApplyFailed(e, _pipeline, _key, slice.ProducerId, slice.Sequence);
            throw;
        }

        _state.Partition = slice.Partition;
        _state.LastDelivery = slice.Delivery;
        if (_feeds) _state.LastFired = null; // a new delivery: what it fires replaces the last one's
        var fired = await CommitAsync(publish: false);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        if (slice.SentAtMs > 0)
        {
            latencies.RecordApplied(now - slice.SentAtMs);
            PipelineMeter.ApplyLatency.Record(now - slice.SentAtMs, PipelineMeter.Pipeline(_pipeline));
        }

        if (fired is not null)
        {
            foreach (var result in fired.Results)
            {
                // Only where event time follows the wall clock (within a day): replays of old data would say nothing.
                if (result.Kind == ResultKind.Final && Math.Abs(now - result.End) < 86_400_000)
                {
                    latencies.RecordResult(now - result.End);
                    PipelineMeter.ResultLatency.Record(now - result.End, PipelineMeter.Pipeline(_pipeline));
                }
            }
        }

        return fired;
    }

    public Task<ResultBatch?> ApplyContributionsAsync(ContributionSlice slice)
    {
        if (_stage is null)
        {
            LogNotChained(_pipeline);
            return Task.FromResult<ResultBatch?>(null);
        }

        // Calls interleave (many upstream partitions call one chained key): each joins the next step, and a step
        // applies every slice waiting and stores them in one write; each call returns once its slice is stored.
        var done = new TaskCompletionSource<ResultBatch?>(TaskCreationOptions.RunContinuationsAsynchronously);
        (_pendingContributions ??= []).Add((slice, done));
        if (!_applyingContributions) _ = ApplyPendingContributionsAsync();
        return done.Task;
    }

    private List<(ContributionSlice Slice, TaskCompletionSource<ResultBatch?> Done)>? _pendingContributions;
    private bool _applyingContributions;

    private async Task ApplyPendingContributionsAsync()
    {
        _applyingContributions = true;
        try
        {
            while (_pendingContributions is { Count: > 0 } step)
            {
                _pendingContributions = null;
                try
                {
                    var fired = await ApplyContributionsStepAsync(step);
                    foreach (var (_, done) in step) done.TrySetResult(fired);
                }
                catch (Exception e)
                {
                    foreach (var (_, done) in step) done.TrySetException(e);
                }
            }
        }
        finally
        {
            _applyingContributions = false;
        }
    }

    private async Task<ResultBatch?> ApplyContributionsStepAsync(List<(ContributionSlice Slice, TaskCompletionSource<ResultBatch?> Done)> step)
    {
        ClearStep();
        var contributions = 0;
        try
        {
            foreach (var (slice, _) in step)
            {
                for (var i = 0; i < slice.Results.Length; i++)
                {
                    var r = slice.Results[i];
                    if (_stage!.Apply(new Contribution(slice.Keys[i], r.Start, r.End, r.Kind, r.Values, r.Revision) { States = r.States }, _output) == EventOutcome.Applied)
                        _appliedInStep++;
                }

                contributions += slice.Results.Length;
                _stage!.AdvanceWatermark(slice.Watermark, _output);
            }

            _state.Contributions += contributions;
        }
        catch (Exception e)
        {
            _discard = true;
            DeactivateOnIdle();
            LogApplyFailed(e, _pipeline, _key, Guid.Empty, step[0].Slice.Delivery);
            throw;
        }

        if (contributions == 0 && _output.Count == 0)
        {
            // Woken with nothing to close yet (or only windows to forget): nothing worth a write.
            await LeaveWordAsync();
            return null;
        }

        return await CommitAsync(publish: true);
    }

    public Task<KeyWindows> GetWindowsAsync()
    {
        if (_stage is not null)
        {
            return Task.FromResult(new KeyWindows(
                _stage.Snapshot().ToArray(), _state.Closed.ToArray(), _stage.Watermark, _state.Contributions, _stage.LateContributions, 0, 0));
        }

        var engineState = _engine?.State;
        return Task.FromResult(new KeyWindows(
            _engine?.Snapshot().ToArray() ?? [],
            _state.Closed.ToArray(),
            engineState?.CurrentWatermark ?? long.MinValue,
            engineState?.AppliedEventCount ?? 0,
            engineState?.LateEventCount ?? 0,
            _state.DuplicateSlices,
            _state.RejectedEvents));
    }

    private void Apply(KeySlice slice)
    {
        var engine = _engine!;
        var map = FieldMap(slice.FieldNames, engine.Fields);
        var width = slice.FieldNames.Length;
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var eventTime = _definition!.Windowing.TimeMode == TimeMode.EventTime;
        var arrival = now;
        if (IdleOnPartitionClock)
        {
            // The partition's clock counts from when its latest item's oldest event was published (under backpressure
            // events wait in the producer's buffer too): no later than any event still to come was published.
            lags.Record(_pipeline, _partition, _definition.Partitions, slice.PublishedAtMs > 0 ? slice.PublishedAtMs : slice.SentAtMs, now);
            // The key's arrival on the same clock, from when the item was cut: no earlier than these events were
            // published. Between the two bounds the idle time a key measures is never more than the time that truly
            // passed between its events' publishing, however long an item collects or waits.
            arrival = slice.SentAtMs > 0 ? now - Math.Min(Math.Max(0, now - slice.SentAtMs), MaxIdleHoldMs) : Clock(now);
            // A key quiet for its idle timeout has had its watermark move on with its clock until these events came,
            // whether or not it was woken for it: they are judged against that, as if it had been advanced every
            // millisecond. On its clock, which stands at when this item's oldest event was published: so events that
            // waited in the producer's buffer or the queue are not judged by how long they waited.
            engine.Advance(Clock(now), _output);
        }
        for (var i = 0; i < slice.Times.Length; i++)
        {
            for (var f = 0; f < _row.Length; f++)
                _row[f] = map[f] < 0 ? double.NaN : slice.Values[i * width + map[f]];

            if (eventTime && !EventTimeRange.Contains(slice.Times[i]))
            {
                // Producers validate before publishing; an item that bypassed that must not block the stream.
                _state.RejectedEvents++;
                _deadLetters.Add(new DeadLetter(slice.ProducerId, slice.Sequence, slice.FirstIndex + i, "event-time-out-of-range",
                    $"event time {slice.Times[i]} is outside [{EventTimeRange.MinMs}, {EventTimeRange.MaxMs}]"));
                continue;
            }

            if (_definition.IsTooFarAhead(slice.Times[i], slice.SentAtMs))
            {
                // Measured against when the item was sent, not this silo's clock: a replay decides the same way.
                _state.RejectedEvents++;
                _deadLetters.Add(new DeadLetter(slice.ProducerId, slice.Sequence, slice.FirstIndex + i, "event-time-too-far-ahead",
                    $"event time {slice.Times[i]} is {slice.Times[i] - slice.SentAtMs} ms ahead of when its item was sent ({slice.SentAtMs}); at most {_definition.MaxTimeAheadMs} ms is accepted"));
                continue;
            }

            if (engine.Process(slice.Times[i], _row, arrival, _output) != EventOutcome.Late)
            {
                _appliedInStep++;
            }
            else
            {
                _late.Add(new LateEventRecord(slice.ProducerId, slice.Sequence, slice.FirstIndex + i,
                    new LateEvent(slice.Times[i], (double[])_row.Clone(), engine.State.CurrentWatermark)));
            }
        }
    }

    /// <summary>
    /// Stores the step (write-through, or at the configured interval in embedded mode) and returns what fired;
    /// <paramref name="publish"/>: also put it on the live feed (timer steps; the partition publishes what its items fired).
    /// </summary>
    private async Task<ResultBatch?> CommitAsync(bool publish)
    {
        List<WindowResult>? forward = null;
        if (_feeds)
        {
            for (var i = 0; i < _output.Count; i++)
            {
                var result = _output[i];
                // The live sketches change with later events: what goes downstream (and is kept for a redelivery) is a copy.
                if (result.States is { } states) _output[i] = result = result with { States = stateCopier.Deserialize(stateCopier.SerializeToArray(states)) };
                if (result.Kind != ResultKind.Partial) (forward ??= []).Add(result);
            }

            if (forward is not null)
            {
                var last = _state.LastFired ??= [];
                last.AddRange(forward);
                if (last.Count > MaxLastFired) last.RemoveRange(0, last.Count - MaxLastFired);
            }
        }

        RememberClosed();
        var write = new SinkWrite(_pipeline, _key, _output.ToArray(), _late.ToArray(), _deadLetters.ToArray());
        _unsaved = true;
        if (options.StateWriteInterval <= TimeSpan.Zero)
        {
            await WriteStateAsync(durable: true, write);
        }
        else
        {
            // Embedded mode keeps no results table: dead letters still go to the sink (the log).
            if (write.DeadLetters.Count > 0) await sink.WriteAsync(write with { Results = [], LateEvents = [] });
            if (time.GetElapsedTime(_lastWriteTimestamp) >= options.StateWriteInterval) await WriteStateAsync(durable: false);
        }

        Count(write);
        await LeaveWordAsync();
        if (write.Results.Count == 0 && write.LateEvents.Count == 0) return null;
        var batch = new ResultBatch(_pipeline, _key, [.. write.Results], [.. write.LateEvents.Select(l => l.Event)]);
        if (publish)
        {
            live.Add(batch);
            // A timer step of a feeding key (an idle timeout closed its windows): its results go downstream from here;
            // a partition's step forwards what its keys return.
            if (forward is not null) await ForwardOwnAsync(forward);
        }

        return batch;
    }

    private async Task WriteStateAsync(bool durable, SinkWrite? output = null)
    {
        using var activity = PipelineTracing.Source.StartActivity("pipeline.state.write");
        activity?.SetTag("pipeline", _pipeline);
        activity?.SetTag("pipeline.results", output?.Results.Count ?? 0);
        try
        {
            var payload = serializer.SerializeToArray(_state);
            _version = await store.WriteAsync(new KeyStateWrite(_pipeline, _key, payload, _version, output, durable));
            _unsaved = false;
            _lastWriteTimestamp = time.GetTimestamp();
        }
        catch
        {
            // Memory is ahead of storage now: drop this activation (without storing it: its results were not stored
            // with it) so a redelivery starts from the stored state.
            _discard = true;
            DeactivateOnIdle();
            throw;
        }
    }

    /// <summary>What this key fired itself (a timer step, or its last results again on activation), to the pipelines it feeds.</summary>
    private Task ForwardOwnAsync(IEnumerable<WindowResult> results) =>
        forwarder.ForwardAsync(_pipeline, _state.Partition, _state.LastDelivery, [new ResultBatch(_pipeline, _key, [.. results], [])], long.MinValue);

    /// <summary>
    /// How far queueing may hold a key's idle clock back at most: past it, a backlog (or a producer whose clock runs
    /// that far behind) no longer delays idle timeouts.
    /// </summary>
    internal const long MaxIdleHoldMs = 5 * 60_000;

    private long Clock() => Clock(time.GetUtcNow().ToUnixTimeMilliseconds());

    /// <summary>
    /// The processing time this key's engine runs on: in event time with an idle timeout, its partition's clock
    /// (<see cref="PartitionLags"/>, held back by at most <see cref="MaxIdleHoldMs"/>), so that events still waiting in
    /// the queue under overload do not count as idleness; otherwise now.
    /// </summary>
    private long Clock(long now) => IdleOnPartitionClock ? lags.IdleClock(_pipeline, _partition, now, MaxIdleHoldMs) : now;

    /// <summary>Whether idleness is measured on the partition's clock (event time with an idle timeout); only then is it recorded.</summary>
    private bool IdleOnPartitionClock => _definition!.Windowing is { TimeMode: TimeMode.EventTime, IdleTimeoutMs: not null };

    public async Task WakeAsync()
    {
        if (_stage is not null)
        {
            // A chained key closes its windows when its input's watermark passes them: as a step of its own, after
            // any contributions being stored (they interleave).
            await ApplyContributionsAsync(new ContributionSlice(-1, 0, [], [], await chainWatermarks.GetAsync(_definition!.Input!.Pipeline)));
            return;
        }

        if (_engine is null) return;
        ClearStep();
        _engine.Advance(Clock(), _output);
        if (_output.Count > 0) await CommitAsync(publish: true);
        else await LeaveWordAsync();
    }

    /// <summary>
    /// Leaves word with the silo when the key is next due while it holds windows that time must close (and takes it
    /// back when it no longer does); with reminders, also keeps a reminder, which brings the key back on another silo
    /// if its silo dies.
    /// </summary>
    private async Task LeaveWordAsync()
    {
        var needed = WindowsNeedTime;
        if (_stage is not null && needed)
        {
            // The silo wakes a chained key when its input's watermark passes its next window.
            chainWatermarks.WakeAt(_definition!.Input!.Pipeline, _pipeline, _key, _stage.NextDue);
        }
        else if (_engine is not null)
        {
            var due = needed ? _engine.NextAdvanceDue : long.MaxValue;
            if (due != long.MaxValue)
            {
                wakeups.WakeAt(_pipeline, _partition, _key, due, IdleOnPartitionClock);
                _wakeLeft = true;
            }
            else if (_wakeLeft)
            {
                wakeups.Forget(_pipeline, _partition, _key);
                _wakeLeft = false;
            }
        }

        // Registered when first needed and kept: toggling it with every window would cost a database write each
        // time. A tick with nothing left to close removes it (ReceiveReminder).
        if (options.UseReminders && needed && !_reminderRegistered)
        {
            // Not awaited: each registration is a database write, and a partition item reaching thousands of new
            // keys must not wait for thousands of them. Until it lands, the timer above closes the key's windows.
            _reminderRegistered = true;
            _ = RegisterReminderAsync();
        }
    }

    private async Task RegisterReminderAsync()
    {
        // A few at a time per process, so that they do not take every pooled connection from the stream queues and
        // the state store when a hundred thousand keys start at once.
        await ReminderRegistrations.WaitAsync();
        try
        {
            await this.RegisterOrUpdateReminder(CloseWindowsReminder, options.ReminderPeriod, options.ReminderPeriod);
        }
        catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException)
        {
            // The silo is shutting down; the key's next activation registers it.
        }
        catch (Exception e)
        {
            _reminderRegistered = false; // the next step tries again
            LogReminderFailed(e, _pipeline, _key);
        }
        finally
        {
            ReminderRegistrations.Release();
        }
    }

    /// <summary>A stored step's metrics (after the write: a step that fails to store is applied again, counted then).</summary>
    private void Count(SinkWrite write)
    {
        var pipeline = PipelineMeter.Pipeline(_pipeline);
        if (_appliedInStep > 0) PipelineMeter.EventsApplied.Add(_appliedInStep, pipeline);
        if (write.LateEvents.Count > 0) PipelineMeter.EventsLate.Add(write.LateEvents.Count, pipeline);
        foreach (var letter in write.DeadLetters) PipelineMeter.DeadLetters.Add(1, pipeline, new("reason", letter.Reason));
        foreach (var result in write.Results) PipelineMeter.WindowsEmitted.Add(1, pipeline, new("kind", KindName(result.Kind)));
        PipelineMeter.ObserveWatermark(_pipeline, _engine?.State.CurrentWatermark ?? _stage!.Watermark);
    }

    private static string KindName(ResultKind kind) => kind switch
    {
        ResultKind.Final => "final",
        ResultKind.Update => "update",
        ResultKind.Retraction => "retraction",
        ResultKind.Partial => "partial",
        _ => "other",
    };

    private void ClearStep()
    {
        _appliedInStep = 0;
        _output.Clear();
        _late.Clear();
        _deadLetters.Clear();
    }

    private void RememberClosed()
    {
        var closed = _state.Closed;
        var keep = _definition!.ClosedWindowsKept;
        foreach (var result in _output)
        {
            if (result.Kind is ResultKind.Partial) continue;
            // By hand, not RemoveAll with a lambda: this runs for every result a key fires.
            for (var i = closed.Count - 1; i >= 0; i--)
            {
                if (closed[i].Start == result.Start && closed[i].End == result.End) closed.RemoveAt(i);
            }

            if (result.Kind is ResultKind.Final or ResultKind.Update) closed.Add(result.States is null ? result : result with { States = null });
        }

        if (closed.Count > keep) closed.RemoveRange(0, closed.Count - keep);
    }

    /// <summary>For each engine field, its column in the slice, or −1 when the slice lacks it (cached: producers send the same fields).</summary>
    private int[] FieldMap(string[] sliceFields, IReadOnlyList<string> engineFields)
    {
        if (ReferenceEquals(sliceFields, _mapFields) || sliceFields.AsSpan().SequenceEqual(_mapFields)) return _map;
        var map = new int[engineFields.Count];
        for (var f = 0; f < map.Length; f++) map[f] = Array.IndexOf(sliceFields, engineFields[f]);
        _mapFields = sliceFields;
        return _map = map;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pipeline '{Pipeline}', key '{Key}': registering the close-windows reminder failed; retried with the key's next step")]
    private partial void LogReminderFailed(Exception exception, string pipeline, string key);

    [LoggerMessage(Level = LogLevel.Error, Message = "Pipeline '{Pipeline}', key '{Key}': applying item {Sequence} of producer {Producer} failed half-way; the key is reloaded from its stored state and the item is applied again when it is redelivered")]
    private partial void LogApplyFailed(Exception exception, string pipeline, string key, Guid producer, long sequence);

    [LoggerMessage(Level = LogLevel.Error, Message = "Upstream results arrived for pipeline '{Pipeline}', which reads no other pipeline; not applied")]
    private partial void LogNotChained(string pipeline);

    [LoggerMessage(Level = LogLevel.Error, Message = "Events arrived for unknown pipeline '{Pipeline}'; they are recorded as dead letters, not applied")]
    private partial void LogUnknownPipeline(string pipeline);

}
