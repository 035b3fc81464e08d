using Microsoft.Extensions.Logging;
using Orleans.Pipeline.Windowing;
using Orleans.Runtime;
using Orleans.Streams;
using Orleans.Streams.Core;

namespace Orleans.Pipeline.Grains;

/// <summary>
/// One (pipeline, key): activated by its input stream. It applies each producer's batches exactly once and in the
/// order the producer sent them (holding a batch that arrives ahead of a gap until the gap fills), runs the windowing
/// engine, records what fired in the <see cref="IResultSink"/>, writes its state (engine, sequence marks, held batches,
/// recent results) in one write, and then publishes what fired to the pipeline's live results stream. A timer
/// advances processing time while the key holds windows (idle keys, early firing).
/// </summary>
[ImplicitStreamSubscription(PipelineNames.EventsNamespace)]
internal sealed partial class KeyWindowGrain(
    [PersistentState(KeyWindowGrain.StateName, PipelineStorage.StateStorage)] IPersistentState<KeyGrainState> state,
    PipelineCatalog catalog,
    KeyGrainOptions options,
    IResultSink sink,
    TimeProvider time,
    ILogger<KeyWindowGrain> logger)
    : Grain, IKeyWindowGrain, IStreamSubscriptionObserver, IAsyncObserver<EventBatch>, IRemindable
{
    /// <summary>The reminder that reactivates a key whose windows only time can close.</summary>
    internal const string CloseWindowsReminder = "close-windows";

    /// <summary>The persisted state's name; unique to this grain class (the storage keys rows by state name).</summary>
    public const string StateName = "pipeline-key-window";

    /// <summary>Producers remembered per key for dedupe; the first seen is forgotten first.</summary>
    internal const int MaxProducersPerKey = 1024;

    /// <summary>Skipped sequences remembered per producer.</summary>
    private const int MaxSkippedPerProducer = 1024;

    private readonly List<WindowResult> _output = [];
    private readonly List<LateEventRecord> _late = [];
    private readonly List<DeadLetter> _deadLetters = [];
    private string _pipeline = "";
    private string _key = "";
    private PipelineDefinition? _definition;
    private WindowEngine? _engine;
    private IAsyncStream<ResultBatch>? _results;
    private IGrainTimer? _timer;
    private IGrainTimer? _gapTimer;
    private bool _reminderRegistered;
    private double[] _row = [];
    private bool _unsaved;
    private long _lastWriteTimestamp;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        (_pipeline, _key) = PipelineNames.Split(this.GetPrimaryKeyString());
        _definition = catalog.Find(_pipeline);
        if (_definition is null)
        {
            LogUnknownPipeline(_pipeline);
            return;
        }

        _engine = new WindowEngine(_definition.Windowing, state.State.Engine, catalog.Registry);
        state.State.Engine = _engine.State;
        _row = new double[_engine.Fields.Count];
        _results = this.GetStreamProvider(PipelineNames.ResultsStreamProvider)
            .GetStream<ResultBatch>(StreamId.Create(PipelineNames.ResultsNamespace, _pipeline));
        if (options.StateWriteInterval > TimeSpan.Zero)
        {
            this.RegisterGrainTimer(
                _ => _unsaved ? WriteStateAsync() : Task.CompletedTask,
                new GrainTimerCreationOptions(options.StateWriteInterval, options.StateWriteInterval) { KeepAlive = false });
        }

        await UpdateTimersAsync();
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName != CloseWindowsReminder) return;
        _reminderRegistered = true;
        // Activation restarted the timers if windows need them; this tick also closes what time alone can close.
        if (_engine is not null) await OnTimerAsync(CancellationToken.None);
        if (_engine is null || !(WindowsNeedTime || HoldsBatches))
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
            var windowing = _definition!.Windowing;
            return _engine!.State.WindowCount > 0 &&
                (windowing.IdleTimeoutMs is not null || windowing.EarlyFiringIntervalMs is not null || windowing.TimeMode == TimeMode.ProcessingTime);
        }
    }

    /// <summary>Whether batches wait behind a sequence gap.</summary>
    private bool HoldsBatches => state.State.Pending.Count > 0;

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_unsaved) await WriteStateAsync();
    }

    public async Task OnSubscribed(IStreamSubscriptionHandleFactory handleFactory) =>
        await handleFactory.Create<EventBatch>().ResumeAsync(this);

    public async Task OnNextAsync(EventBatch batch, StreamSequenceToken? token = null)
    {
        ClearStep();
        if (_engine is null)
        {
            // Not applied, but not lost without a trace either.
            _deadLetters.Add(new DeadLetter(batch.ProducerId, batch.Sequence, -1, "unknown-pipeline",
                $"this silo runs no pipeline '{_pipeline}'; {batch.Count} events not applied"));
            await sink.WriteAsync(new SinkWrite(_pipeline, _key, [], [], _deadLetters.ToArray()));
            return;
        }

        if (Accept(batch)) await CommitAsync();
    }

    public Task OnCompletedAsync() => Task.CompletedTask;

    public Task OnErrorAsync(Exception ex)
    {
        LogStreamError(ex, _pipeline, _key);
        return Task.CompletedTask;
    }

    public Task<KeyWindows> GetWindowsAsync()
    {
        var engineState = _engine?.State;
        return Task.FromResult(new KeyWindows(
            _engine?.Snapshot().ToArray() ?? [],
            state.State.Closed.ToArray(),
            engineState?.CurrentWatermark ?? long.MinValue,
            engineState?.AppliedEventCount ?? 0,
            engineState?.LateEventCount ?? 0,
            state.State.DuplicateBatches));
    }

    /// <summary>
    /// Applies the batch if it is its producer's next one (and any held batches it unblocks), holds it if it is
    /// ahead of a gap, drops it if it was applied before. Returns whether the state changed.
    /// </summary>
    private bool Accept(EventBatch batch)
    {
        var current = state.State;
        var producer = batch.ProducerId;
        var last = current.LastSequence.GetValueOrDefault(producer);
        if (batch.Sequence <= last)
        {
            if (current.Skipped.TryGetValue(producer, out var skipped) && skipped.Remove(batch.Sequence))
            {
                // Given up as missing earlier, and here after all: applied once, out of its producer's order.
                if (skipped.Count == 0) current.Skipped.Remove(producer);
                Apply(batch);
                return true;
            }

            current.DuplicateBatches++;
            return false;
        }

        if (batch.Sequence == last + 1)
        {
            Apply(batch);
            RememberSequence(producer, batch.Sequence);
            ApplyHeld(producer);
            return true;
        }

        if (current.Pending.Exists(p => p.Batch.ProducerId == producer && p.Batch.Sequence == batch.Sequence))
        {
            current.DuplicateBatches++;
            return false;
        }

        current.Pending.Add(new PendingBatch(batch, time.GetUtcNow().ToUnixTimeMilliseconds()));
        if (current.Pending.Sum(p => p.Batch.Count) > options.MaxPendingEvents)
            SkipGaps($"more than {options.MaxPendingEvents} events were held behind sequence gaps");
        return true;
    }

    /// <summary>Applies the producer's held batches that are now next in its sequence.</summary>
    private void ApplyHeld(Guid producer)
    {
        var current = state.State;
        while (true)
        {
            var last = current.LastSequence[producer];
            current.Pending.RemoveAll(p => p.Batch.ProducerId == producer && p.Batch.Sequence <= last);
            var next = current.Pending.FindIndex(p => p.Batch.ProducerId == producer && p.Batch.Sequence == last + 1);
            if (next < 0) return;
            var batch = current.Pending[next].Batch;
            current.Pending.RemoveAt(next);
            Apply(batch);
            current.LastSequence[producer] = batch.Sequence;
        }
    }

    /// <summary>Stops waiting for missing batches: records them as dead letters and applies what was held.</summary>
    private void SkipGaps(string reason)
    {
        var current = state.State;
        foreach (var producer in current.Pending.Select(p => p.Batch.ProducerId).Distinct().ToList())
        {
            var last = current.LastSequence.GetValueOrDefault(producer);
            var first = current.Pending.Where(p => p.Batch.ProducerId == producer).Min(p => p.Batch.Sequence);
            var skipped = current.Skipped.TryGetValue(producer, out var list) ? list : current.Skipped[producer] = [];
            for (var missing = last + 1; missing < first; missing++)
            {
                if (skipped.Count < MaxSkippedPerProducer) skipped.Add(missing);
                if (missing - last <= MaxSkippedPerProducer || missing == first - 1)
                    _deadLetters.Add(new DeadLetter(producer, missing, -1, "sequence-gap", $"{reason}; batches {last + 1} to {first - 1} of this producer were skipped"));
            }

            if (skipped.Count == 0) current.Skipped.Remove(producer);
            RememberSequence(producer, first - 1);
            ApplyHeld(producer);
            LogSkippedGap(_pipeline, _key, producer, last + 1, first - 1);
        }
    }

    private void Apply(EventBatch batch)
    {
        var engine = _engine!;
        var map = FieldMap(batch.FieldNames, engine.Fields);
        var width = batch.FieldNames.Length;
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        for (var i = 0; i < batch.Times.Length; i++)
        {
            for (var f = 0; f < _row.Length; f++)
                _row[f] = map[f] < 0 ? double.NaN : batch.Values[i * width + map[f]];

            if (!EventTimeRange.Contains(batch.Times[i]) && _definition!.Windowing.TimeMode == TimeMode.EventTime)
            {
                // Producers validate before publishing; a batch that bypassed that must not block the stream.
                state.State.RejectedEvents++;
                _deadLetters.Add(new DeadLetter(batch.ProducerId, batch.Sequence, i, "event-time-out-of-range",
                    $"event time {batch.Times[i]} is outside [{EventTimeRange.MinMs}, {EventTimeRange.MaxMs}]"));
                continue;
            }

            if (engine.Process(batch.Times[i], _row, now, _output) == EventOutcome.Late)
            {
                _late.Add(new LateEventRecord(batch.ProducerId, batch.Sequence, i,
                    new LateEvent(batch.Times[i], (double[])_row.Clone(), engine.State.CurrentWatermark)));
            }
        }
    }

    /// <summary>Records the step's output, writes state (write-through or at the configured interval), publishes.</summary>
    private async Task CommitAsync()
    {
        RememberClosed();
        var write = new SinkWrite(_pipeline, _key, _output.ToArray(), _late.ToArray(), _deadLetters.ToArray());
        if (!write.IsEmpty)
        {
            try
            {
                await sink.WriteAsync(write);
            }
            catch
            {
                // Memory is ahead of storage now: drop this activation so the redelivery starts from the stored state.
                DeactivateOnIdle();
                throw;
            }
        }

        _unsaved = true;
        if (options.StateWriteInterval <= TimeSpan.Zero || time.GetElapsedTime(_lastWriteTimestamp) >= options.StateWriteInterval)
            await WriteStateAsync();

        if (write.Results.Count > 0 || write.LateEvents.Count > 0)
        {
            try
            {
                await _results!.OnNextAsync(new ResultBatch(_pipeline, _key, [.. write.Results], [.. write.LateEvents.Select(l => l.Event)]));
            }
            catch (Exception e)
            {
                // The live feed is best effort; state and the results sink already hold the step.
                LogLivePublishFailed(e, _pipeline, _key);
            }
        }

        await UpdateTimersAsync();
    }

    private async Task WriteStateAsync()
    {
        try
        {
            await state.WriteStateAsync();
            _unsaved = false;
            _lastWriteTimestamp = time.GetTimestamp();
        }
        catch
        {
            // Memory is ahead of storage now: drop this activation so the redelivery starts from the stored state.
            DeactivateOnIdle();
            throw;
        }
    }

    private async Task OnTimerAsync(CancellationToken cancellationToken)
    {
        if (_engine is null) return;
        ClearStep();
        _engine.Advance(time.GetUtcNow().ToUnixTimeMilliseconds(), _output);
        if (_output.Count > 0) await CommitAsync();
        else await UpdateTimersAsync();
    }

    private async Task OnGapTimerAsync(CancellationToken cancellationToken)
    {
        var pending = state.State.Pending;
        if (pending.Count == 0 || _engine is null)
        {
            await UpdateTimersAsync();
            return;
        }

        var oldest = pending.Min(p => p.ArrivedAtMs);
        if (time.GetUtcNow().ToUnixTimeMilliseconds() - oldest < (long)options.SequenceGapTimeout.TotalMilliseconds) return;
        ClearStep();
        SkipGaps($"the missing batches did not arrive within {options.SequenceGapTimeout.TotalSeconds:0.#} s");
        await CommitAsync();
    }

    /// <summary>
    /// Keeps a timer (which keeps the grain active) exactly while the key holds windows that time must close, and
    /// another while batches wait behind a sequence gap; with reminders, also a reminder while windows wait for time,
    /// which brings the key back on another silo if its silo dies.
    /// </summary>
    private async Task UpdateTimersAsync()
    {
        var windowing = _definition!.Windowing;
        var needed = WindowsNeedTime;
        if (needed && _timer is null)
        {
            var period = TimeSpan.FromMilliseconds(Math.Clamp(
                Math.Min(windowing.IdleTimeoutMs / 4 ?? long.MaxValue, windowing.EarlyFiringIntervalMs ?? 1_000), 50, 10_000));
            _timer = this.RegisterGrainTimer(OnTimerAsync, new GrainTimerCreationOptions(period, period) { KeepAlive = true });
        }
        else if (!needed && _timer is not null)
        {
            _timer.Dispose();
            _timer = null;
        }

        var waiting = HoldsBatches;
        if (waiting && _gapTimer is null)
        {
            var period = TimeSpan.FromMilliseconds(Math.Clamp(options.SequenceGapTimeout.TotalMilliseconds / 4, 100, 10_000));
            _gapTimer = this.RegisterGrainTimer(OnGapTimerAsync, new GrainTimerCreationOptions(period, period) { KeepAlive = true });
        }
        else if (!waiting && _gapTimer is not null)
        {
            _gapTimer.Dispose();
            _gapTimer = null;
        }

        // Registered when first needed and kept: toggling it with every window would cost a database write each
        // time. A tick with nothing left to close removes it (ReceiveReminder).
        if (options.UseReminders && (needed || waiting) && !_reminderRegistered)
        {
            await this.RegisterOrUpdateReminder(CloseWindowsReminder, options.ReminderPeriod, options.ReminderPeriod);
            _reminderRegistered = true;
        }
    }

    private void ClearStep()
    {
        _output.Clear();
        _late.Clear();
        _deadLetters.Clear();
    }

    private void RememberSequence(Guid producer, long sequence)
    {
        var current = state.State;
        if (!current.LastSequence.ContainsKey(producer))
        {
            current.ProducerOrder.Add(producer);
            if (current.ProducerOrder.Count > MaxProducersPerKey)
            {
                current.LastSequence.Remove(current.ProducerOrder[0]);
                current.Skipped.Remove(current.ProducerOrder[0]);
                current.ProducerOrder.RemoveAt(0);
            }
        }

        current.LastSequence[producer] = sequence;
    }

    private void RememberClosed()
    {
        var closed = state.State.Closed;
        var keep = _definition!.ClosedWindowsKept;
        foreach (var result in _output)
        {
            if (result.Kind is ResultKind.Partial) continue;
            closed.RemoveAll(r => r.Start == result.Start && r.End == result.End);
            if (result.Kind is ResultKind.Final or ResultKind.Update) closed.Add(result);
        }

        if (closed.Count > keep) closed.RemoveRange(0, closed.Count - keep);
    }

    /// <summary>For each engine field, its column in the batch, or −1 when the batch lacks it.</summary>
    private static int[] FieldMap(string[] batchFields, IReadOnlyList<string> engineFields)
    {
        var map = new int[engineFields.Count];
        for (var f = 0; f < map.Length; f++) map[f] = Array.IndexOf(batchFields, engineFields[f]);
        return map;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Events arrived for unknown pipeline '{Pipeline}'; they are recorded as dead letters, not applied")]
    private partial void LogUnknownPipeline(string pipeline);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stream delivery failed for pipeline '{Pipeline}', key '{Key}'")]
    private partial void LogStreamError(Exception exception, string pipeline, string key);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publishing live results failed for pipeline '{Pipeline}', key '{Key}'; they are in the key's state and results store")]
    private partial void LogLivePublishFailed(Exception exception, string pipeline, string key);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pipeline '{Pipeline}', key '{Key}': producer {Producer} batches {From} to {To} never arrived; later batches applied without them")]
    private partial void LogSkippedGap(string pipeline, string key, Guid producer, long from, long to);
}
