using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;
using Orleans.Streams;
using Orleans.Streams.Core;
using Orleans.Pipeline.Storage;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Grains;

/// <summary>
/// One partition of a pipeline, activated by its stream (implicit subscription). For each item it decides, per
/// producer, whether it is next (apply), ahead of a gap (hold until the gap fills or times out) or a repeat (drop);
/// then it numbers it with the next delivery, stores that number, splits the item by key and hands every key grain
/// its slice in parallel, and returns (acknowledging the item) once every key has stored it. One item at a time, so
/// one key's slices arrive strictly in order. What the keys fired goes out on the live feed as one message per item.
/// </summary>
[ImplicitStreamSubscription(PipelineNames.EventsNamespace)]
[Orleans.Placement.Immovable]
internal sealed partial class PartitionGrain(
    IKeyStateStore store,
    Orleans.Serialization.Serializer<PartitionGrainState> serializer,
    PipelineCatalog catalog,
    KeyGrainOptions options,
    IResultSink sink,
    LiveResults live,
    KeyGrainReferences keys,
    ChainForwarder forwarder,
    ChainWatermarks chainWatermarks,
    [FromKeyedServices(PipelineTime.Key)] TimeProvider time,
    ILogger<PartitionGrain> logger)
    : Grain, IPartitionGrain, IStreamSubscriptionObserver, IAsyncObserver<PartitionBatch>, IRemindable
{
    /// <summary>
    /// Deliveries are numbered (activation epoch &lt;&lt; <see cref="EpochShift"/>) + n: every activation starts above
    /// anything an earlier one handed out, even when the earlier one's last numbers were never stored (embedded mode
    /// writes behind), so keys never mistake a new item for a repeat.
    /// </summary>
    internal const int EpochShift = 40;

    /// <summary>Producers remembered per partition for ordering and dedupe; the least recently heard from is forgotten first.</summary>
    internal const int MaxProducers = 4096;

    /// <summary>Applied request tags remembered per producer (its open requests: a bound that only a stuck producer reaches).</summary>
    internal const int MaxRequestsPerProducer = 65_536;

    /// <summary>Skipped sequences remembered per producer.</summary>
    private const int MaxSkippedPerProducer = 1024;

    private const string GapReminder = "held-items";

    private readonly Dictionary<Guid, List<(long Sequence, TaskCompletionSource Done)>> _waiters = [];
    private PartitionGrainState _state = new();
    private long _version;
    private string _stateKey = "";
    private string _pipeline = "";
    private int _partition;
    private PipelineDefinition? _definition;
    private IGrainTimer? _gapTimer;
    private bool _reminderRegistered;
    private bool _feeds;

    /// <summary>The chain watermark this partition last heard (for a pipeline that feeds others).</summary>
    private long _chainWatermark = long.MinValue;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var (pipeline, partition) = PipelineNames.Split(this.GetPrimaryKeyString());
        _pipeline = pipeline;
        _partition = int.TryParse(partition, out var p) ? p : -1;
        _stateKey = partition;
        _definition = catalog.Find(_pipeline);
        _feeds = _definition is not null && forwarder.Feeds(_pipeline);
        if (await store.ReadAsync(StatePipeline, _stateKey, cancellationToken) is { } stored)
        {
            _state = serializer.Deserialize(stored.Payload) ?? new PartitionGrainState();
            _version = stored.Version;
        }

        // Embedded mode: whatever was in flight at a crash was lost with the in-memory queues; nothing will come back.
        if (options.StateWriteInterval > TimeSpan.Zero) _state.Assigned.Clear();
        // Arrival times of held items are another silo's clock: their gap timeout counts from this activation, so a
        // clock ahead cannot give gaps up at once (and apply items out of their producer's order).
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        for (var i = 0; i < _state.Held.Count; i++) _state.Held[i] = _state.Held[i] with { ArrivedAtMs = now };
        // A new epoch, stored before any delivery of it is handed out.
        var epoch = (_state.LastDelivery >> EpochShift) + 1;
        if (_state.Assigned.Count == 0) _state.LastDelivery = epoch << EpochShift;
        await WriteStateAsync(durable: true);
        await UpdateGapTimerAsync();
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken) =>
        await WriteStateAsync(durable: true);

    /// <summary>
    /// The key under which this partition records its own dead letters (whole items: unknown pipeline, malformed,
    /// sequence gaps, lost in flight): one per partition, since a producer numbers its items per partition and two
    /// partitions' item 1 must not be taken for the same dead letter.
    /// </summary>
    private string LetterKey => $"#partition/{_partition}";

    /// <summary>Partition state rows live beside key rows, under a name no pipeline can have.</summary>
    private string StatePipeline => _pipeline + "\u0001partitions";

    private async Task WriteStateAsync(bool durable)
    {
        _version = await store.WriteAsync(new KeyStateWrite(StatePipeline, _stateKey, serializer.SerializeToArray(_state), _version, null, durable));
    }

    public async Task OnSubscribed(IStreamSubscriptionHandleFactory handleFactory) =>
        await handleFactory.Create<PartitionBatch>().ResumeAsync(this);

    public Task OnCompletedAsync() => Task.CompletedTask;

    public Task OnErrorAsync(Exception ex)
    {
        LogStreamError(ex, _pipeline, _partition);
        return Task.CompletedTask;
    }

    public async Task<long> WaitForAppliedAsync(Guid producer, long sequence, TimeSpan timeout)
    {
        var applied = _state.LastSequence.GetValueOrDefault(producer);
        if (applied >= sequence || timeout <= TimeSpan.Zero) return applied;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_waiters.TryGetValue(producer, out var list)) _waiters[producer] = list = [];
        list.Add((sequence, done));
        try
        {
            // A long poll: its timeout is real time (the call's), not the pipeline's clock.
            await done.Task.WaitAsync(timeout, TimeProvider.System);
        }
        catch (TimeoutException)
        {
            // Answered with the progress so far; the producer asks again.
        }

        list.Remove((sequence, done));
        if (list.Count == 0) _waiters.Remove(producer);
        return _state.LastSequence.GetValueOrDefault(producer);
    }

    public async Task AbandonAsync(Guid producer, long sequence)
    {
        var current = _state;
        if (current.LastSequence.TryGetValue(producer, out var applied) && sequence <= applied) return;
        if (current.Held.Exists(h => h.Item.ProducerId == producer && h.Item.Sequence == sequence)) return; // it arrived after all
        if (!current.Abandoned.TryGetValue(producer, out var abandoned)) current.Abandoned[producer] = abandoned = [];
        if (!abandoned.Contains(sequence) && abandoned.Count < MaxSkippedPerProducer) abandoned.Add(sequence);
        if (!current.LastSequence.ContainsKey(producer) && sequence == 1) RememberSequence(producer, 0);
        if (current.LastSequence.ContainsKey(producer))
        {
            PassAbandoned(producer);
            if (current.Assigned.Count == 0) await ApplyHeldAsync(producer);
        }

        await WriteStateAsync(durable: options.StateWriteInterval <= TimeSpan.Zero);
        Notify(producer);
    }

    public Task<PartitionStatus> GetStatusAsync() => Task.FromResult(new PartitionStatus(
        _state.LastSequence.Count, _state.Held.Count, _state.AppliedRequests.Values.Sum(t => t.Count), _state.DuplicateItems, _state.DuplicateRequestEvents));

    /// <summary>Moves the producer's progress past the abandoned sequences right after it (as if skipped).</summary>
    private void PassAbandoned(Guid producer)
    {
        var current = _state;
        if (!current.Abandoned.TryGetValue(producer, out var abandoned) || !current.LastSequence.TryGetValue(producer, out var last)) return;
        while (abandoned.Remove(last + 1))
        {
            last++;
            RememberSequence(producer, last);
            if (!current.Skipped.TryGetValue(producer, out var skipped)) current.Skipped[producer] = skipped = [];
            if (skipped.Count < MaxSkippedPerProducer) skipped.Add(last);
        }

        abandoned.RemoveAll(s => s <= last);
        if (abandoned.Count == 0) current.Abandoned.Remove(producer);
    }

    public async Task OnNextAsync(PartitionBatch item, StreamSequenceToken? token = null)
    {
        if (item.Problem() is { } problem)
        {
            await DeadLetterAsync(item, "malformed-item", $"the item is malformed ({problem}); {item.Times?.Length ?? 0} events not applied");
            return;
        }

        if (_definition?.Input is { } input)
        {
            await GiveUpItemAsync(item, "chained-pipeline", $"pipeline '{_pipeline}' reads pipeline '{input.Pipeline}' and takes no events; {item.Count} events not applied");
            return;
        }

        if (_definition is null)
        {
            await GiveUpItemAsync(item, "unknown-pipeline", $"this silo runs no pipeline '{_pipeline}'; {item.Count} events not applied");
            return;
        }

        var current = _state;
        var producer = item.ProducerId;
        if (current.Abandoned.Count > 0) PassAbandoned(producer);
        if (current.Assigned.Count > 0 && !current.Assigned.Exists(a => a.Producer == producer && a.Sequence == item.Sequence) &&
            item.Sequence > current.LastSequence.GetValueOrDefault(producer))
        {
            // Items that were being applied when this partition last stopped come back (after the queue's visibility
            // timeout) with the delivery numbers some keys already stored: nothing newer may be numbered before them,
            // or those keys would take the returning item for a repeat.
            await HoldAsync(item);
            return;
        }

        var last = current.LastSequence.GetValueOrDefault(producer);
        if (item.Sequence <= last)
        {
            if (current.Skipped.TryGetValue(producer, out var skipped) && skipped.Contains(item.Sequence))
            {
                // Given up as missing earlier, and here after all: applied once, out of its producer's order.
                await ForwardAsync(item);
                skipped.Remove(item.Sequence);
                if (skipped.Count == 0) current.Skipped.Remove(producer);
                await WriteStateAsync(durable: options.StateWriteInterval <= TimeSpan.Zero);
                return;
            }

            current.DuplicateItems++;
            PipelineMeter.Duplicates.Add(1, PipelineMeter.Pipeline(_pipeline), new("level", "item"));
            return;
        }

        if (item.Sequence == last + 1)
        {
            var wasAssigned = current.Assigned.Count > 0;
            await ForwardAsync(item);
            if (wasAssigned && current.Assigned.Count == 0) await ApplyAllHeldAsync();
            else await ApplyHeldAsync(producer);
            await WriteStateAsync(durable: options.StateWriteInterval <= TimeSpan.Zero);
            Notify(producer);
            return;
        }

        await HoldAsync(item);
    }

    /// <summary>
    /// Done with an item as a dead letter: its producer goes on (otherwise it would wait for this item forever, and a
    /// silo rolled out without a pipeline would stall every producer of the partitions it happens to host).
    /// </summary>
    private async Task GiveUpItemAsync(PartitionBatch item, string reason, string detail)
    {
        await DeadLetterAsync(item, reason, detail);
        if (item.Sequence > _state.LastSequence.GetValueOrDefault(item.ProducerId))
        {
            RememberSequence(item.ProducerId, item.Sequence);
            await WriteStateAsync(durable: options.StateWriteInterval <= TimeSpan.Zero);
        }

        Notify(item.ProducerId);
    }

    /// <summary>Holds an item (ahead of a gap, or behind items being re-applied) until it can go.</summary>
    private async Task HoldAsync(PartitionBatch item)
    {
        var current = _state;
        if (current.Held.Exists(h => h.Item.ProducerId == item.ProducerId && h.Item.Sequence == item.Sequence))
        {
            current.DuplicateItems++;
            PipelineMeter.Duplicates.Add(1, PipelineMeter.Pipeline(_pipeline), new("level", "item"));
            return;
        }

        current.Held.Add(new HeldItem(item, time.GetUtcNow().ToUnixTimeMilliseconds()));
        if (current.Held.Sum(h => (long)h.Item.Count) > options.MaxPendingEvents)
            await SkipGapsAsync($"more than {options.MaxPendingEvents} events were held behind sequence gaps");
        await WriteStateAsync(durable: options.StateWriteInterval <= TimeSpan.Zero);
        await UpdateGapTimerAsync();
    }

    /// <summary>Applies every producer's held items that are next in its sequence.</summary>
    private async Task ApplyAllHeldAsync()
    {
        foreach (var producer in _state.Held.Select(h => h.Item.ProducerId).Distinct().ToList())
        {
            if (_state.LastSequence.ContainsKey(producer) || _state.Held.Exists(h => h.Item.ProducerId == producer && h.Item.Sequence == 1))
            {
                if (!_state.LastSequence.ContainsKey(producer)) RememberSequence(producer, 0);
                await ApplyHeldAsync(producer);
                Notify(producer);
            }
        }
    }

    /// <summary>
    /// Applies one item: gives it its delivery number (the same one again if it was assigned before a crash), stores
    /// that, hands every key its slice, waits until all have stored it, then marks the producer's progress (in memory;
    /// the caller writes) and publishes what fired.
    /// </summary>
    private async Task ForwardAsync(PartitionBatch item)
    {
        var current = _state;
        var assigned = current.Assigned.Find(a => a.Producer == item.ProducerId && a.Sequence == item.Sequence);
        if (assigned is null)
        {
            assigned = new AssignedDelivery(item.ProducerId, item.Sequence, ++current.LastDelivery);
            current.Assigned.Add(assigned);
            // In write-through mode the number must survive a crash before any key can store it.
            if (options.StateWriteInterval <= TimeSpan.Zero) await WriteStateAsync(durable: options.StateWriteInterval <= TimeSpan.Zero);
        }

        using var activity = PipelineTracing.Source.StartActivity("pipeline.partition.apply", ActivityKind.Consumer, item.TraceParent);
        activity?.SetTag("pipeline", _pipeline);
        activity?.SetTag("pipeline.partition", _partition);
        activity?.SetTag("pipeline.producer", item.ProducerId.ToString());
        activity?.SetTag("pipeline.sequence", item.Sequence);
        activity?.SetTag("pipeline.events", item.Count);
        var original = item;
        item = WithoutAppliedRequests(item);
        var width = item.FieldNames.Length;
        var watermark = _feeds ? NextWatermark(item) : long.MinValue;
        var passing = _feeds ? KeysToAdvance(item, watermark) : [];
        var calls = new Task<ResultBatch?>[item.Keys.Length + passing.Count];
        var start = 0;
        for (var k = 0; k < item.Keys.Length; k++)
        {
            var end = item.KeyEnds[k];
            var slice = new KeySlice(_partition, assigned.Delivery, item.ProducerId, item.Sequence, start, item.FieldNames,
                item.Times[start..end], item.Values[(start * width)..(end * width)], item.SentAtMs, activity?.Id, item.PublishedAtMs, watermark);
            calls[k] = keys.Get(_pipeline, item.Keys[k]).ApplyAsync(slice);
            start = end;
        }

        for (var k = 0; k < passing.Count; k++)
        {
            // Keys without events in this item whose windows the partition's watermark now passes: told, so they close.
            var slice = new KeySlice(_partition, assigned.Delivery, item.ProducerId, item.Sequence, 0, item.FieldNames, [], [], item.SentAtMs, activity?.Id, item.PublishedAtMs, watermark);
            calls[item.Keys.Length + k] = keys.Get(_pipeline, passing[k]).ApplyAsync(slice);
        }

        await Task.WhenAll(calls);
        if (_feeds) await ForwardDownstreamAsync(item, assigned.Delivery, watermark, calls);
        PipelineMeter.ItemsApplied.Add(1, PipelineMeter.Pipeline(_pipeline));
        RecordRequests(original);
        current.Assigned.Remove(assigned);
        if (item.Sequence > current.LastSequence.GetValueOrDefault(item.ProducerId)) RememberSequence(item.ProducerId, item.Sequence);
        else TouchProducer(item.ProducerId);
        Publish(calls);
    }

    /// <summary>
    /// The item without the events of tagged requests this partition applied before (brought by another producer's
    /// item: a request published again after its first gateway died part way). Deterministic for a given state, so a
    /// redelivered item is cut the same way again.
    /// </summary>
    private PartitionBatch WithoutAppliedRequests(PartitionBatch item)
    {
        if (item.Requests is not { Length: > 0 } requests || item.EventRequests is not { } eventRequests) return item;
        bool[]? drop = null;
        for (var r = 0; r < requests.Length; r++)
        {
            if (IsApplied(requests[r])) (drop ??= new bool[requests.Length])[r] = true;
        }

        if (drop is null) return item;
        var width = item.FieldNames.Length;
        List<string> keys = [];
        List<int> ends = [];
        List<long> times = [];
        List<double> values = [];
        List<int> kept = [];
        var start = 0;
        for (var k = 0; k < item.Keys.Length; k++)
        {
            var end = item.KeyEnds[k];
            var before = times.Count;
            for (var i = start; i < end; i++)
            {
                var r = eventRequests[i];
                if (r >= 0 && drop[r]) continue;
                times.Add(item.Times[i]);
                values.AddRange(item.Values.AsSpan(i * width, width));
                kept.Add(r);
            }

            if (times.Count > before)
            {
                keys.Add(item.Keys[k]);
                ends.Add(times.Count);
            }

            start = end;
        }

        _state.DuplicateRequestEvents += item.Count - times.Count;
        PipelineMeter.Duplicates.Add(item.Count - times.Count, PipelineMeter.Pipeline(_pipeline), new("level", "request-events"));
        LogRequestRepeat(_pipeline, _partition, item.Count - times.Count, item.ProducerId, item.Sequence);
        return item with { Keys = [.. keys], KeyEnds = [.. ends], Times = [.. times], Values = [.. values], EventRequests = [.. kept] };
    }

    private bool IsApplied(RequestTag request) =>
        _state.AppliedRequests.TryGetValue(request.Producer, out var tags) && tags.BinarySearch(request.Tag) >= 0;

    /// <summary>Remembers the item's tagged requests as applied, and forgets its producer's tags below its <see cref="PartitionBatch.OpenFrom"/>.</summary>
    private void RecordRequests(PartitionBatch item)
    {
        var all = _state.AppliedRequests;
        if (item.Requests is { Length: > 0 } requests)
        {
            foreach (var request in requests)
            {
                if (!all.TryGetValue(request.Producer, out var tags))
                {
                    // Bounded like the producers' marks: the entry added longest ago goes (a dead producer's, typically).
                    if (all.Count >= MaxProducers) all.Remove(all.Keys.First());
                    all[request.Producer] = tags = [];
                }

                var at = tags.BinarySearch(request.Tag);
                if (at >= 0) continue;
                tags.Insert(~at, request.Tag);
                if (tags.Count > MaxRequestsPerProducer)
                {
                    LogRequestsForgotten(_pipeline, _partition, request.Producer, tags[0]);
                    tags.RemoveAt(0);
                }
            }
        }

        if (item.OpenFrom > 0 && all.TryGetValue(item.ProducerId, out var own))
        {
            var below = own.BinarySearch(item.OpenFrom);
            own.RemoveRange(0, below >= 0 ? below : ~below);
            if (own.Count == 0) all.Remove(item.ProducerId);
        }
    }

    private void Publish(Task<ResultBatch?>[] calls)
    {
        foreach (var call in calls)
        {
            if (call.Result is { Replayed: false } batch) live.Add(batch);
        }
    }

    /// <summary>The partition's watermark once <paramref name="item"/> is applied (it never moves back).</summary>
    private long NextWatermark(PartitionBatch item)
    {
        var highest = long.MinValue;
        foreach (var t in item.Times)
        {
            if (EventTimeRange.Contains(t) && t > highest) highest = t;
        }

        return highest == long.MinValue ? _state.Watermark : Math.Max(_state.Watermark, highest - _definition!.Windowing.MaxOutOfOrdernessMs);
    }

    /// <summary>
    /// The keys not in <paramref name="item"/> that may hold windows ending at or before <paramref name="watermark"/>
    /// (their first due end has passed); none unless the watermark passes a window end on the pipeline's grid.
    /// </summary>
    private List<string> KeysToAdvance(PartitionBatch item, long watermark)
    {
        var open = _state.OpenKeys;
        if (open.Count == 0 || watermark == long.MinValue) return [];
        var window = _definition!.Windowing.Window;
        if (_state.Watermark != long.MinValue && watermark < ChainTiming.NextEnd(window, _state.Watermark)) return [];
        var inItem = new HashSet<string>(item.Keys, StringComparer.Ordinal);
        var due = new List<string>();
        foreach (var (key, state) in open)
        {
            if (state.FirstDue <= watermark && !inItem.Contains(key)) due.Add(key);
        }

        return due;
    }

    /// <summary>
    /// Hands what the item's keys fired to the pipelines this one feeds, and then moves the partition's watermark on
    /// (and reports it): everything a window ending at or before the watermark contributes is downstream first.
    /// </summary>
    private async Task ForwardDownstreamAsync(PartitionBatch item, long delivery, long watermark, Task<ResultBatch?>[] calls)
    {
        var window = _definition!.Windowing.Window;
        var open = _state.OpenKeys;
        // Every key here has been moved to the watermark: what it holds now ends after it.
        var nextEnd = watermark == long.MinValue ? long.MinValue : ChainTiming.NextEnd(window, watermark);
        var start = 0;
        for (var k = 0; k < item.Keys.Length; k++)
        {
            var end = item.KeyEnds[k];
            long earliest = long.MaxValue, latest = long.MinValue;
            for (var i = start; i < end; i++)
            {
                var t = item.Times[i];
                if (!EventTimeRange.Contains(t)) continue;
                latest = Math.Max(latest, ChainTiming.LastEnd(window, t));
                // An event's first window ends at the first grid end after it; those the watermark passed have fired.
                earliest = Math.Min(earliest, ChainTiming.NextEnd(window, watermark == long.MinValue ? t : Math.Max(t, watermark)));
            }

            start = end;
            if (latest == long.MinValue) continue;
            var pending = long.MaxValue;
            if (open.TryGetValue(item.Keys[k], out var before))
            {
                latest = Math.Max(latest, before.LastEnd);
                if (before.LastEnd > watermark) pending = before.FirstDue > watermark ? before.FirstDue : nextEnd;
            }

            open[item.Keys[k]] = new OpenKey(Math.Min(pending, earliest), latest);
        }

        if (watermark != long.MinValue)
        {
            List<string>? closed = null;
            List<string>? told = null;
            foreach (var (key, state) in open)
            {
                if (state.LastEnd <= watermark) (closed ??= []).Add(key);
                else if (state.FirstDue <= watermark) (told ??= []).Add(key);
            }

            foreach (var key in closed ?? []) open.Remove(key);
            // Told this time (their first due end passed): their next window ends after the watermark.
            foreach (var key in told ?? []) open[key] = open[key] with { FirstDue = nextEnd };
        }

        var batches = new List<ResultBatch>();
        foreach (var call in calls)
        {
            if (call.Result is { } batch) batches.Add(batch);
        }

        await forwarder.ForwardAsync(_pipeline, _partition, delivery, batches, _chainWatermark);
        _state.Watermark = watermark;
        if (watermark != long.MinValue)
        {
            _chainWatermark = Math.Max(_chainWatermark, await GrainFactory.GetGrain<IChainWatermarkGrain>(_pipeline).ReportAsync(_partition, watermark));
            chainWatermarks.Observe(_pipeline, _chainWatermark);
        }
    }

    /// <summary>Applies the producer's held items that are now next in its sequence.</summary>
    private async Task ApplyHeldAsync(Guid producer)
    {
        var current = _state;
        while (true)
        {
            var last = current.LastSequence[producer];
            current.Held.RemoveAll(h => h.Item.ProducerId == producer && h.Item.Sequence <= last);
            var next = current.Held.FindIndex(h => h.Item.ProducerId == producer && h.Item.Sequence == last + 1);
            if (next < 0 && current.Abandoned.ContainsKey(producer))
            {
                PassAbandoned(producer);
                if (current.LastSequence[producer] > last) continue;
            }

            if (next < 0) return;
            var item = current.Held[next].Item;
            await ForwardAsync(item);
            current.Held.RemoveAll(h => h.Item.ProducerId == producer && h.Item.Sequence == item.Sequence);
        }
    }

    /// <summary>Stops waiting for missing items: records them as dead letters and applies what was held.</summary>
    private async Task SkipGapsAsync(string reason)
    {
        var current = _state;
        var letters = new List<DeadLetter>();
        if (current.Assigned.Count > 0)
        {
            letters.AddRange(current.Assigned.Select(a => new DeadLetter(a.Producer, a.Sequence, -1, "in-flight-item-lost",
                $"{reason}; the item was being applied when partition {_partition} stopped and was not delivered again")));
            await sink.WriteAsync(new SinkWrite(_pipeline, LetterKey, [], [], letters.ToArray()));
            PipelineMeter.DeadLetters.Add(letters.Count, PipelineMeter.Pipeline(_pipeline), new("reason", "in-flight-item-lost"));
            letters.Clear();
            current.Assigned.Clear();
            await ApplyAllHeldAsync();
        }

        foreach (var producer in current.Held.Select(h => h.Item.ProducerId).Distinct().ToList())
        {
            var last = current.LastSequence.GetValueOrDefault(producer);
            var first = current.Held.Where(h => h.Item.ProducerId == producer).Min(h => h.Item.Sequence);
            var skipped = current.Skipped.TryGetValue(producer, out var list) ? list : current.Skipped[producer] = [];
            for (var missing = last + 1; missing < first; missing++)
            {
                if (skipped.Count < MaxSkippedPerProducer) skipped.Add(missing);
                if (missing - last <= MaxSkippedPerProducer || missing == first - 1)
                    letters.Add(new DeadLetter(producer, missing, -1, "sequence-gap", $"{reason}; items {last + 1} to {first - 1} of this producer to partition {_partition} were skipped"));
            }

            if (skipped.Count == 0) current.Skipped.Remove(producer);
            LogSkippedGap(_pipeline, _partition, producer, last + 1, first - 1);
            if (letters.Count > 0)
            {
                await sink.WriteAsync(new SinkWrite(_pipeline, LetterKey, [], [], letters.ToArray()));
                PipelineMeter.DeadLetters.Add(letters.Count, PipelineMeter.Pipeline(_pipeline), new("reason", "sequence-gap"));
            }

            letters.Clear();
            RememberSequence(producer, first - 1);
            await ApplyHeldAsync(producer);
            Notify(producer);
        }
    }

    private async Task OnGapTimerAsync(CancellationToken cancellationToken)
    {
        var held = _state.Held;
        if (held.Count > 0 && _definition is not null &&
            time.GetUtcNow().ToUnixTimeMilliseconds() - held.Min(h => h.ArrivedAtMs) >= (long)options.SequenceGapTimeout.TotalMilliseconds)
        {
            await SkipGapsAsync($"the missing items did not arrive within {options.SequenceGapTimeout.TotalSeconds:0.#} s");
            await WriteStateAsync(durable: options.StateWriteInterval <= TimeSpan.Zero);
        }

        await UpdateGapTimerAsync();
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName != GapReminder) return;
        _reminderRegistered = true;
        // Activation restarted the timer if items are held; without any, the reminder is no longer needed.
        if (_state.Held.Count == 0)
        {
            if (await this.GetReminder(reminderName) is { } reminder) await this.UnregisterReminder(reminder);
            _reminderRegistered = false;
        }
    }

    /// <summary>A timer while items wait behind a gap (and a reminder, which brings the partition back if its silo dies).</summary>
    private async Task UpdateGapTimerAsync()
    {
        var waiting = _state.Held.Count > 0;
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

        if (options.UseReminders && waiting && !_reminderRegistered)
        {
            await this.RegisterOrUpdateReminder(GapReminder, options.ReminderPeriod, options.ReminderPeriod);
            _reminderRegistered = true;
        }
    }

    private Task DeadLetterAsync(PartitionBatch item, string reason, string detail)
    {
        LogDeadItem(_pipeline, _partition, reason, detail);
        PipelineMeter.DeadLetters.Add(1, PipelineMeter.Pipeline(_pipeline), new("reason", reason));
        return sink.WriteAsync(new SinkWrite(_pipeline, LetterKey, [], [], [new DeadLetter(item.ProducerId, item.Sequence, -1, reason, detail)]));
    }

    /// <summary>Wakes producers waiting for their items to be applied.</summary>
    private void Notify(Guid producer)
    {
        if (!_waiters.TryGetValue(producer, out var list)) return;
        var applied = _state.LastSequence.GetValueOrDefault(producer);
        foreach (var (sequence, done) in list)
        {
            if (sequence <= applied) done.TrySetResult();
        }
    }

    private void RememberSequence(Guid producer, long sequence)
    {
        var current = _state;
        if (!current.LastSequence.ContainsKey(producer))
        {
            current.ProducerOrder.Add(producer);
            if (current.ProducerOrder.Count > MaxProducers)
            {
                current.LastSequence.Remove(current.ProducerOrder[0]);
                current.Skipped.Remove(current.ProducerOrder[0]);
                current.Abandoned.Remove(current.ProducerOrder[0]);
                current.ProducerOrder.RemoveAt(0);
            }
        }
        else
        {
            TouchProducer(producer);
        }

        current.LastSequence[producer] = sequence;
    }

    /// <summary>Moves the producer to the most recently heard from end (cheap: the active producer is usually last already).</summary>
    private void TouchProducer(Guid producer)
    {
        var order = _state.ProducerOrder;
        if (order.Count == 0 || order[^1] == producer) return;
        var at = order.LastIndexOf(producer);
        if (at < 0) return;
        order.RemoveAt(at);
        order.Add(producer);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Pipeline '{Pipeline}', partition {Partition}: {Events} events of item {Sequence} of producer {Producer} belong to requests applied before (published again after a gateway failed); dropped")]
    private partial void LogRequestRepeat(string pipeline, int partition, int events, Guid producer, long sequence);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pipeline '{Pipeline}', partition {Partition}: producer {Producer} has more open requests than are remembered; request {Tag} is forgotten (published again, it would be applied twice)")]
    private partial void LogRequestsForgotten(string pipeline, int partition, Guid producer, long tag);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stream delivery failed for pipeline '{Pipeline}', partition {Partition}")]
    private partial void LogStreamError(Exception exception, string pipeline, int partition);


    [LoggerMessage(Level = LogLevel.Warning, Message = "Pipeline '{Pipeline}', partition {Partition}: producer {Producer} items {From} to {To} never arrived; later items applied without them")]
    private partial void LogSkippedGap(string pipeline, int partition, Guid producer, long from, long to);

    [LoggerMessage(Level = LogLevel.Error, Message = "Pipeline '{Pipeline}', partition {Partition}: an item was not applied ({Reason}): {Detail}")]
    private partial void LogDeadItem(string pipeline, int partition, string reason, string detail);
}
