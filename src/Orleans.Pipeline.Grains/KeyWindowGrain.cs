using Microsoft.Extensions.Logging;
using Orleans.Pipeline.Windowing;
using Orleans.Runtime;
using Orleans.Streams;
using Orleans.Streams.Core;

namespace Orleans.Pipeline.Grains;

/// <summary>
/// One (pipeline, key): activated by its input stream, it drops repeated batches, runs the windowing engine, writes
/// its state (engine, dedupe marks, recent results) in one write per batch, and then publishes what fired to the
/// pipeline's output stream. A timer advances processing time while the key holds windows (idle keys, early firing).
/// </summary>
[ImplicitStreamSubscription(PipelineNames.EventsNamespace)]
internal sealed partial class KeyWindowGrain(
    [PersistentState(KeyWindowGrain.StateName, PipelineStorage.StateStorage)] IPersistentState<KeyGrainState> state,
    PipelineCatalog catalog,
    KeyGrainOptions options,
    TimeProvider time,
    ILogger<KeyWindowGrain> logger)
    : Grain, IKeyWindowGrain, IStreamSubscriptionObserver, IAsyncObserver<EventBatch>
{
    /// <summary>The persisted state's name; unique to this grain class (the storage keys rows by state name).</summary>
    public const string StateName = "pipeline-key-window";

    /// <summary>Producers remembered per key for dedupe; the first seen is forgotten first.</summary>
    internal const int MaxProducersPerKey = 1024;

    private readonly List<WindowResult> _output = [];
    private string _pipeline = "";
    private string _key = "";
    private PipelineDefinition? _definition;
    private WindowEngine? _engine;
    private IAsyncStream<ResultBatch>? _results;
    private IGrainTimer? _timer;
    private double[] _row = [];
    private bool _unsaved;
    private long _lastWriteTimestamp;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        (_pipeline, _key) = PipelineNames.Split(this.GetPrimaryKeyString());
        _definition = catalog.Find(_pipeline);
        if (_definition is null)
        {
            LogUnknownPipeline(_pipeline);
            return Task.CompletedTask;
        }

        _engine = new WindowEngine(_definition.Windowing, state.State.Engine, catalog.Registry);
        state.State.Engine = _engine.State;
        _row = new double[_engine.Fields.Count];
        _results = this.GetStreamProvider(PipelineNames.StreamProvider)
            .GetStream<ResultBatch>(StreamId.Create(PipelineNames.ResultsNamespace, _pipeline));
        UpdateTimer();
        if (options.StateWriteInterval > TimeSpan.Zero)
        {
            this.RegisterGrainTimer(
                _ => _unsaved ? WriteStateAsync() : Task.CompletedTask,
                new GrainTimerCreationOptions(options.StateWriteInterval, options.StateWriteInterval) { KeepAlive = false });
        }

        return Task.CompletedTask;
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_unsaved) await WriteStateAsync();
    }

    public async Task OnSubscribed(IStreamSubscriptionHandleFactory handleFactory) =>
        await handleFactory.Create<EventBatch>().ResumeAsync(this);

    public async Task OnNextAsync(EventBatch batch, StreamSequenceToken? token = null)
    {
        if (_engine is null) return; // unknown pipeline: logged at activation, nothing to apply
        var current = state.State;
        if (current.LastSequence.TryGetValue(batch.ProducerId, out var last) && batch.Sequence <= last)
        {
            current.DuplicateBatches++;
            return;
        }

        _output.Clear();
        var late = Apply(batch);
        RememberSequence(batch.ProducerId, batch.Sequence);
        await CommitAndPublishAsync(late);
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

    private List<LateEvent>? Apply(EventBatch batch)
    {
        var engine = _engine!;
        var map = FieldMap(batch.FieldNames, engine.Fields);
        var width = batch.FieldNames.Length;
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        List<LateEvent>? late = null;
        for (var i = 0; i < batch.Times.Length; i++)
        {
            for (var f = 0; f < _row.Length; f++)
                _row[f] = map[f] < 0 ? double.NaN : batch.Values[i * width + map[f]];

            if (!EventTimeRange.Contains(batch.Times[i]) && _definition!.Windowing.TimeMode == TimeMode.EventTime)
            {
                // Producers validate before publishing; a batch that bypassed that must not block the stream.
                state.State.RejectedEvents++;
                continue;
            }

            if (engine.Process(batch.Times[i], _row, now, _output) == EventOutcome.Late)
                (late ??= []).Add(new LateEvent(batch.Times[i], (double[])_row.Clone(), engine.State.CurrentWatermark));
        }

        return late;
    }

    private async Task CommitAndPublishAsync(List<LateEvent>? late)
    {
        RememberClosed();
        _unsaved = true;
        if (options.StateWriteInterval <= TimeSpan.Zero || time.GetElapsedTime(_lastWriteTimestamp) >= options.StateWriteInterval)
            await WriteStateAsync();

        if (_output.Count > 0 || late is not null)
            await _results!.OnNextAsync(new ResultBatch(_pipeline, _key, _output.ToArray(), late?.ToArray() ?? []));
        UpdateTimer();
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
        _output.Clear();
        _engine.Advance(time.GetUtcNow().ToUnixTimeMilliseconds(), _output);
        if (_output.Count > 0) await CommitAndPublishAsync(null);
        else UpdateTimer();
    }

    /// <summary>Keeps a timer (which keeps the grain active) exactly while the key holds windows that time must close.</summary>
    private void UpdateTimer()
    {
        var windowing = _definition!.Windowing;
        var needed = _engine!.State.WindowCount > 0 &&
            (windowing.IdleTimeoutMs is not null || windowing.EarlyFiringIntervalMs is not null || windowing.TimeMode == TimeMode.ProcessingTime);
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

    [LoggerMessage(Level = LogLevel.Error, Message = "Events arrived for unknown pipeline '{Pipeline}'; they are not applied")]
    private partial void LogUnknownPipeline(string pipeline);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stream delivery failed for pipeline '{Pipeline}', key '{Key}'")]
    private partial void LogStreamError(Exception exception, string pipeline, string key);
}
