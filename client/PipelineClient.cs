using System.Data.Common;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Orleans.Pipeline.Windowing;
using Orleans.Runtime;
using Orleans.Streams;

namespace Orleans.Pipeline.Client;

/// <summary>Tuning of a <see cref="PipelineClient"/>.</summary>
public sealed class PipelineClientOptions
{
    /// <summary>Events per partition item at most (one stream item, however many keys it holds).</summary>
    public int MaxBatchSize { get; set; } = 8_192;

    /// <summary>
    /// Items per partition sent but not yet applied by every key they hold; beyond it, sending waits until the
    /// partition catches up, and publishers wait once the partition's buffer is full: backpressure from the key
    /// grains to the caller of <c>PublishAsync</c>, with memory bounded by partitions × (this + 1) × <see cref="MaxBatchSize"/>.
    /// </summary>
    public int MaxUnappliedBatches { get; set; } = 2;

    /// <summary>How long a partly filled item waits for more events before it is sent anyway.</summary>
    public TimeSpan Linger { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Attempts per item for errors other than the cluster being busy or unreachable for a while (time-outs, full
    /// queues, transient database errors), which are retried with the same sequence until the item is stored.
    /// </summary>
    public int MaxAttempts { get; set; } = 6;

    /// <summary>First retry delay; doubled per attempt, at most 2 s.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(100);
}

/// <summary>
/// Publishes events to pipelines and reads their results. Events are validated and grouped per partition of their
/// pipeline (<see cref="PipelineNames.PartitionOf"/>) into items of many keys; each partition sends one item at a
/// time, numbered 1, 2, 3, … with this client's producer id (a retry reuses the number, and the partition applies
/// each once, in order), and keeps at most <see cref="PipelineClientOptions.MaxUnappliedBatches"/> items unapplied.
/// When the pipeline's grains fall behind, <see cref="PublishAsync(string, PipelineEvent, CancellationToken)"/> waits
/// (backpressure); it never drops an event because the system is busy. Dispose (or <see cref="FlushAsync"/>) to
/// send what is buffered; an item that failed for good makes <see cref="FlushAsync"/> throw
/// <see cref="PublishFailedException"/>, so nothing is lost silently.
/// </summary>
public sealed class PipelineClient : IAsyncDisposable
{
    private readonly IClusterClient _cluster;
    private readonly PipelineClientOptions _options;
    private readonly TimeProvider _time;
    private readonly IStreamProvider _streams;
    private readonly IStreamProvider _resultStreams;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, PartitionBuffer[]> _buffers = new(StringComparer.Ordinal);
    private readonly Queue<Exception> _failures = new();
    private Dictionary<string, PipelineDefinition>? _pipelines;
    private Dictionary<string, string[]> _fields = [];
    private long _published;
    private long _waits;
    private long _peakBuffered;

    public PipelineClient(IClusterClient cluster, PipelineClientOptions? options = null, TimeProvider? time = null)
    {
        _cluster = cluster;
        _options = options ?? new PipelineClientOptions();
        if (_options.MaxBatchSize <= 0 || _options.MaxUnappliedBatches <= 0 || _options.MaxAttempts <= 0)
            throw new ArgumentException("batch size, unapplied batches and attempts must be > 0", nameof(options));
        _time = time ?? TimeProvider.System;
        _streams = cluster.GetStreamProvider(PipelineNames.StreamProvider);
        _resultStreams = cluster.GetStreamProvider(PipelineNames.ResultsStreamProvider);
    }

    /// <summary>This client's producer id, carried by every item it sends.</summary>
    public Guid ProducerId { get; } = Guid.NewGuid();

    private readonly SortedSet<long> _openRequests = [];
    private long _lastRequest;

    /// <summary>
    /// Tags a new request of this producer, open until <see cref="CloseRequest"/>: while it is open, the partitions
    /// remember which of them applied its events, so that the request published again under the same tag (by any
    /// client, e.g. another gateway after this one died part way) is applied once. Close it once it can no longer be
    /// published again (its request id is marked done).
    /// </summary>
    public RequestTag OpenRequest()
    {
        lock (_openRequests)
        {
            var tag = ++_lastRequest;
            _openRequests.Add(tag);
            return new RequestTag(ProducerId, tag);
        }
    }

    /// <summary>Closes a request tagged by <see cref="OpenRequest"/>: the partitions may forget it.</summary>
    public void CloseRequest(RequestTag request)
    {
        if (request.Producer != ProducerId) throw new ArgumentException($"request {request.Tag} was tagged by producer {request.Producer}, not this client ({ProducerId})", nameof(request));
        lock (_openRequests) _openRequests.Remove(request.Tag);
    }

    /// <summary>This producer's oldest tag that may still be published again (0 before the first tag).</summary>
    private long OpenFrom()
    {
        lock (_openRequests) return _lastRequest == 0 ? 0 : _openRequests.Count > 0 ? _openRequests.Min : _lastRequest + 1;
    }

    /// <summary>Events accepted by <c>PublishAsync</c>.</summary>
    public long PublishedEvents => Interlocked.Read(ref _published);

    /// <summary>
    /// The most events any one partition buffer held after a <c>PublishAsync</c>: at most
    /// <see cref="PipelineClientOptions.MaxBatchSize"/> plus one per concurrent publisher, however many keys are
    /// published. (<see cref="PublishAndWaitAsync"/> does not wait for room: its callers bound what they admit.)
    /// </summary>
    public long PeakBufferedEvents => Interlocked.Read(ref _peakBuffered);

    /// <summary>Times a publisher or sender waited because the pipeline was behind (backpressure).</summary>
    public long BackpressureWaits => Interlocked.Read(ref _waits);

    /// <summary>The cluster's pipelines, fetched once.</summary>
    public async Task<IReadOnlyDictionary<string, PipelineDefinition>> GetPipelinesAsync()
    {
        if (_pipelines is { } known) return known;
        var all = await _cluster.GetGrain<IPipelineCatalogGrain>(0).GetPipelinesAsync();
        // Derived once: WindowingDefinition.Fields is computed on each access, too slow for every published event.
        _fields = all.ToDictionary(p => p.Name, p => p.Windowing.Fields.ToArray(), StringComparer.Ordinal);
        return _pipelines = all.ToDictionary(p => p.Name, StringComparer.Ordinal);
    }

    /// <summary>
    /// Validates and buffers one event; waits while its partition's buffer is full and the partition is behind.
    /// Throws <see cref="ArgumentException"/> naming the problem (unknown pipeline, missing key, time out of range, a
    /// missing or non-finite field); events accepted before stay accepted.
    /// </summary>
    public async Task PublishAsync(string pipeline, PipelineEvent item, CancellationToken cancellationToken = default)
    {
        var definition = await FindAsync(pipeline);
        var row = Validate(definition, _fields[definition.Name], item, _time.GetUtcNow().ToUnixTimeMilliseconds());
        var buffer = BufferFor(definition, item.Key);
        Task? room;
        lock (buffer)
        {
            buffer.Add(item.Key, item.TimeMs, row, _time.GetTimestamp());
            if (buffer.Count > Interlocked.Read(ref _peakBuffered)) Interlocked.Exchange(ref _peakBuffered, buffer.Count);
            room = buffer.Count >= _options.MaxBatchSize ? buffer.RoomAsync() : null;
            EnsureSender(buffer);
        }

        Interlocked.Increment(ref _published);
        PipelineMeter.EventsPublished.Add(1, PipelineMeter.Pipeline(definition.Name));
        if (room is not null)
        {
            Interlocked.Increment(ref _waits);
            PipelineMeter.BackpressureWaits.Add(1);
            await room.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Publishes events in order; stops at the first invalid one (those before it stay accepted).</summary>
    public async Task PublishAsync(string pipeline, IEnumerable<PipelineEvent> items, CancellationToken cancellationToken = default)
    {
        foreach (var item in items) await PublishAsync(pipeline, item, cancellationToken);
    }

    /// <summary>A typed publisher: your own records, with selectors for key, time and fields.</summary>
    public TypedPublisher<T> For<T>(string pipeline, Func<T, string> key, Func<T, DateTimeOffset> time, params (string Field, Func<T, double> Value)[] fields) =>
        new(this, pipeline, key, time, fields);

    /// <summary>Sends every buffered event and waits until all of it is stored; throws if any item failed for good.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        List<Task> stored = [];
        lock (_gate)
        {
            foreach (var buffers in _buffers.Values)
            {
                foreach (var buffer in buffers)
                {
                    if (buffer is null) continue;
                    lock (buffer)
                    {
                        if (buffer.Count == 0 && buffer.Sending is null) continue;
                        stored.Add(buffer.Flush());
                        EnsureSender(buffer);
                    }
                }
            }
        }

        try
        {
            await Task.WhenAll(stored).WaitAsync(cancellationToken);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            // Reported below with every other failure.
        }

        List<Exception> failures;
        lock (_failures)
        {
            failures = [.. _failures];
            _failures.Clear();
        }

        if (failures.Count > 0) throw new PublishFailedException(failures);
    }

    /// <summary>
    /// Flushes, then waits until every key has applied (and stored) everything this client published: stronger than
    /// <see cref="FlushAsync"/>, which returns once the events are in the stream's queues.
    /// </summary>
    public async Task WaitUntilAppliedAsync(CancellationToken cancellationToken = default)
    {
        await FlushAsync(cancellationToken);
        List<PartitionBuffer> buffers;
        lock (_gate) buffers = _buffers.Values.SelectMany(b => b).OfType<PartitionBuffer>().ToList();
        foreach (var buffer in buffers)
        {
            long last;
            lock (buffer) last = buffer.LastSequence;
            if (last > 0) await WaitForPartitionAsync(buffer, last + _options.MaxUnappliedBatches).WaitAsync(cancellationToken);
        }
    }

    /// <summary>A key's held and recently closed windows.</summary>
    public Task<KeyWindows> QueryAsync(string pipeline, string key) =>
        _cluster.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(pipeline, key)).GetWindowsAsync();

    /// <summary>
    /// Up to <paramref name="max"/> key result batches after position <paramref name="after"/> from the pipeline's
    /// recent-results log (in embedded mode, one silo: every result; in cluster mode, the log of the silo serving
    /// the call). With nothing after that position yet, waits up to <paramref name="wait"/> for new results.
    /// </summary>
    public async Task<ResultLogPage> ReadRecentResultsAsync(string pipeline, long after, int max, TimeSpan wait)
    {
        await FindAsync(pipeline);
        return await _cluster.GetGrain<IResultLogGrain>(pipeline).ReadAsync(after, max, wait);
    }

    /// <summary>
    /// Calls <paramref name="onBatch"/> for every key's result batch the pipeline emits from the moment this returns,
    /// until the returned handle is disposed. Delivery of the next batch waits for the handler. When the feed skipped
    /// results (this subscriber, or the feed, fell further behind than the silo's recent-results log reaches), the
    /// subscription first reads what it missed back from that log; what the log no longer holds is reported to
    /// <paramref name="onMissed"/> and counted in <see cref="ResultSubscription.MissedBatches"/>, never skipped without
    /// a word (the keys' windows, <see cref="QueryAsync"/>, and in cluster mode the results table still have them).
    /// </summary>
    public async Task<ResultSubscription> SubscribeAsync(string pipeline, Func<ResultBatch, Task> onBatch, Func<ResultsMissed, Task>? onMissed = null)
    {
        await FindAsync(pipeline);
        var subscription = new ResultSubscription(_cluster.GetGrain<IResultLogGrain>(pipeline), pipeline, onBatch, onMissed);
        var stream = _resultStreams.GetStream<ResultFeed>(StreamId.Create(PipelineNames.ResultsNamespace, pipeline));
        subscription.Handle = await stream.SubscribeAsync((feed, _) => subscription.OnFeedAsync(feed));
        return subscription;
    }

    /// <summary>
    /// Every result batch the pipeline emits from the first <c>MoveNextAsync</c> on, until cancelled. Delivery waits
    /// while the consumer is behind (a bounded buffer of <paramref name="buffer"/> batches). Results the subscription
    /// missed and could not read back end the enumeration with <see cref="ResultsMissedException"/>.
    /// </summary>
    public async IAsyncEnumerable<ResultBatch> ReadResultsAsync(string pipeline, int buffer = 1024, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var channel = Channel.CreateBounded<ResultBatch>(buffer);
        await using var subscription = await SubscribeAsync(pipeline, batch => channel.Writer.WriteAsync(batch, cancellationToken).AsTask(), missed =>
        {
            channel.Writer.TryComplete(new ResultsMissedException(missed));
            return Task.CompletedTask;
        });
        await foreach (var batch in channel.Reader.ReadAllAsync(cancellationToken)) yield return batch;
    }

    public async ValueTask DisposeAsync() => await FlushAsync();

    private async Task<PipelineDefinition> FindAsync(string pipeline)
    {
        var pipelines = await GetPipelinesAsync();
        if (pipeline is null || !pipelines.TryGetValue(pipeline, out var definition))
            throw new UnknownPipelineException($"unknown pipeline '{pipeline}' (known: {string.Join(", ", pipelines.Keys.Order(StringComparer.Ordinal))})");
        return definition;
    }

    private PartitionBuffer BufferFor(PipelineDefinition definition, string key)
    {
        var partition = PipelineNames.PartitionOf(key, definition.Partitions);
        PartitionBuffer[]? buffers;
        lock (_gate)
        {
            if (!_buffers.TryGetValue(definition.Name, out buffers)) _buffers[definition.Name] = buffers = new PartitionBuffer[definition.Partitions];
            return buffers[partition] ??= new PartitionBuffer(definition.Name, partition, _fields[definition.Name],
                _streams.GetStream<PartitionBatch>(StreamId.Create(PipelineNames.EventsNamespace, PipelineNames.PartitionKey(definition.Name, partition))));
        }
    }

    private static double[] Validate(PipelineDefinition definition, IReadOnlyList<string> fields, PipelineEvent item, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(item);
        if (string.IsNullOrEmpty(item.Key))
            throw new ArgumentException($"pipeline '{definition.Name}': event key is missing", nameof(item));
        if (item.Key.Length > PipelineNames.MaxKeyLength)
            throw new ArgumentException($"pipeline '{definition.Name}': event key is longer than {PipelineNames.MaxKeyLength} characters", nameof(item));
        if (definition.Windowing.TimeMode == TimeMode.EventTime && !EventTimeRange.Contains(item.TimeMs))
            throw new ArgumentOutOfRangeException(nameof(item), item.TimeMs, $"pipeline '{definition.Name}', key '{item.Key}': event time {item.TimeMs} is outside [{EventTimeRange.MinMs}, {EventTimeRange.MaxMs}] Unix milliseconds");
        if (definition.IsTooFarAhead(item.TimeMs, nowMs))
            throw new ArgumentOutOfRangeException(nameof(item), item.TimeMs, $"pipeline '{definition.Name}', key '{item.Key}': event time {item.TimeMs} is {item.TimeMs - nowMs} ms ahead of the clock ({nowMs}); at most {definition.MaxTimeAheadMs} ms ahead is accepted (the pipeline's MaxTimeAhead)");

        var row = new double[fields.Count];
        for (var f = 0; f < fields.Count; f++)
        {
            if (item.Fields is null || !item.Fields.TryGetValue(fields[f], out var value))
                throw new ArgumentException($"pipeline '{definition.Name}', key '{item.Key}': field '{fields[f]}' is missing", nameof(item));
            if (!double.IsFinite(value))
                throw new ArgumentException($"pipeline '{definition.Name}', key '{item.Key}': field '{fields[f]}' is {(double.IsNaN(value) ? "NaN" : "infinite")}, not a finite number", nameof(item));
            row[f] = value;
        }

        return row;
    }

    /// <summary>Starts the partition's sender if none runs (under the buffer's lock).</summary>
    private void EnsureSender(PartitionBuffer buffer)
    {
        if (buffer.Sending is not null) return;
        buffer.Sending = Task.Run(() => SendLoopAsync(buffer));
    }

    /// <summary>
    /// The partition's sender: cuts an item when the buffer is full, lingered long enough or is flushed; waits until
    /// the partition has applied all but <see cref="PipelineClientOptions.MaxUnappliedBatches"/> of this producer's
    /// earlier items; sends it (retrying with the same sequence); then completes whoever waited for those events.
    /// Exits when the buffer is empty.
    /// </summary>
    private async Task SendLoopAsync(PartitionBuffer buffer)
    {
        while (true)
        {
            PartitionBatch? batch;
            TaskCompletionSource? waiters;
            TimeSpan wait;
            lock (buffer)
            {
                if (buffer.Count == 0)
                {
                    buffer.Sending = null;
                    return;
                }

                wait = buffer.Count >= _options.MaxBatchSize || buffer.FlushRequested ? TimeSpan.Zero : _options.Linger - _time.GetElapsedTime(buffer.FirstAddedAt);
                batch = null;
                waiters = null;
                if (wait <= TimeSpan.Zero) (batch, waiters) = buffer.Cut(ProducerId, _time.GetUtcNow().ToUnixTimeMilliseconds(), OpenFrom());
            }

            if (batch is null)
            {
                await buffer.WaitForFullAsync(wait, _time);
                continue;
            }

            try
            {
                await WaitForPartitionAsync(buffer, batch.Sequence);
                await DeliverAsync(buffer, batch, persistent: waiters is not null);
                waiters?.TrySetResult();
            }
            catch (Exception e)
            {
                var failure = new InvalidOperationException(
                    $"pipeline '{buffer.Pipeline}', partition {buffer.Partition}: an item of {batch.Count} events could not be stored after {_options.MaxAttempts} attempts", e);
                lock (_failures) _failures.Enqueue(failure);
                waiters?.TrySetException(failure);
                await AbandonAsync(buffer, batch.Sequence);
            }
        }
    }

    /// <summary>
    /// Tells the partition that this producer gave up an item, so that its later items do not wait for it (the gap
    /// timeout would otherwise hold them); if the item was stored after all, the partition still applies it once.
    /// </summary>
    private async Task AbandonAsync(PartitionBuffer buffer, long sequence)
    {
        var grain = _cluster.GetGrain<IPartitionGrain>(PipelineNames.PartitionKey(buffer.Pipeline, buffer.Partition));
        var delay = _options.RetryDelay;
        for (var attempt = 1; attempt <= _options.MaxAttempts; attempt++)
        {
            try
            {
                await grain.AbandonAsync(ProducerId, sequence);
                return;
            }
            catch (Exception e) when (e is not ArgumentException)
            {
                // Unreachable for now: try again; past the attempts, the partition's gap timeout moves on instead.
                await Task.Delay(delay, _time);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }

    /// <summary>Keeps at most <see cref="PipelineClientOptions.MaxUnappliedBatches"/> of this producer's items unapplied in the partition.</summary>
    private async Task WaitForPartitionAsync(PartitionBuffer buffer, long sequence)
    {
        var needed = sequence - _options.MaxUnappliedBatches;
        if (buffer.Applied >= needed) return;
        Interlocked.Increment(ref _waits);
            PipelineMeter.BackpressureWaits.Add(1);
        var grain = _cluster.GetGrain<IPartitionGrain>(PipelineNames.PartitionKey(buffer.Pipeline, buffer.Partition));
        var delay = _options.RetryDelay;
        while (buffer.Applied < needed)
        {
            try
            {
                buffer.Applied = Math.Max(buffer.Applied, await grain.WaitForAppliedAsync(ProducerId, needed, TimeSpan.FromSeconds(5)));
                delay = _options.RetryDelay;
            }
            catch (Exception e) when (e is not ArgumentException)
            {
                // The partition's silo is moving or busy: ask again.
                await Task.Delay(delay, _time);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }

    /// <summary>
    /// Sends one item, retrying with the same sequence: errors that mean the cluster is busy or briefly unreachable
    /// are retried until the item is stored; others up to <see cref="PipelineClientOptions.MaxAttempts"/> times (or
    /// without end when <paramref name="persistent"/>: someone waits for exactly this item).
    /// </summary>
    private async Task DeliverAsync(PartitionBuffer buffer, PartitionBatch batch, bool persistent)
    {
        var delay = _options.RetryDelay;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await buffer.Stream.OnNextAsync(batch);
                return;
            }
            catch (Exception e) when (e is not ArgumentException && (persistent || IsBusy(e) || attempt < _options.MaxAttempts))
            {
                if (IsBusy(e)) Interlocked.Increment(ref _waits);
            PipelineMeter.BackpressureWaits.Add(1);
                await Task.Delay(delay, _time);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }

    /// <summary>Whether an error means "busy or briefly unreachable, try again" rather than "this item cannot be stored".</summary>
    private static bool IsBusy(Exception e) => e switch
    {
        TimeoutException or OrleansMessageRejectionException or SiloUnavailableException => true,
        DbException db => db.IsTransient,
        AggregateException { InnerExceptions.Count: 1 } a => IsBusy(a.InnerExceptions[0]),
        _ => e.InnerException is { } inner && IsBusy(inner),
    };

    /// <summary>
    /// Validates every event of a request (all or nothing: the first invalid one throws <see cref="InvalidEventException"/>
    /// with its index, an unknown pipeline <see cref="UnknownPipelineException"/>), without publishing anything.
    /// </summary>
    public async Task<ValidatedEvents> ValidateAsync(string pipeline, IReadOnlyList<PipelineEvent> events)
    {
        var definition = await FindAsync(pipeline);
        var fields = _fields[definition.Name];
        var rows = new double[events.Count][];
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        for (var i = 0; i < events.Count; i++)
        {
            try
            {
                rows[i] = Validate(definition, fields, events[i], now);
            }
            catch (ArgumentException e)
            {
                throw new InvalidEventException(i, e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal));
            }
        }

        return new ValidatedEvents(definition.Name, fields, events, rows);
    }

    /// <summary>
    /// Adds validated events to their partitions' buffers, which fill up with other callers' events and go out when
    /// full or after the linger (so that many small requests still make few large items), and returns a task that
    /// completes when every one of these events is stored. Such items are never given up: they are retried with the
    /// same sequence until stored, so waiting longer never publishes anything twice.
    /// </summary>
    /// <remarks>
    /// A tagged request (<paramref name="request"/>: <see cref="OpenRequest"/>, or the tag another client gave it when
    /// it first published it) is applied once by each partition, however many clients publish it.
    /// </remarks>
    public Task PublishAndWaitAsync(ValidatedEvents validated, RequestTag? request = null)
    {
        var definition = _pipelines![validated.Pipeline];
        var stored = new HashSet<Task>();
        var now = _time.GetTimestamp();
        if (request is { } tag)
        {
            // A partition's share of the request goes into its buffer at once, so it travels in one item: applied
            // there in full, or not at all.
            var byPartition = new List<int>[definition.Partitions];
            for (var i = 0; i < validated.Events.Count; i++)
                (byPartition[PipelineNames.PartitionOf(validated.Events[i].Key, definition.Partitions)] ??= []).Add(i);
            foreach (var indices in byPartition)
            {
                if (indices is null) continue;
                var buffer = BufferFor(definition, validated.Events[indices[0]].Key);
                lock (buffer)
                {
                    var index = buffer.AddRequest(tag);
                    foreach (var i in indices) buffer.Add(validated.Events[i].Key, validated.Events[i].TimeMs, validated.Rows[i], now, index);
                    stored.Add(buffer.CurrentBatchStored());
                    EnsureSender(buffer);
                }
            }

            Interlocked.Add(ref _published, validated.Events.Count);
            PipelineMeter.EventsPublished.Add(validated.Events.Count, PipelineMeter.Pipeline(definition.Name));
            return Task.WhenAll(stored);
        }

        for (var i = 0; i < validated.Events.Count; i++)
        {
            var item = validated.Events[i];
            var buffer = BufferFor(definition, item.Key);
            lock (buffer)
            {
                buffer.Add(item.Key, item.TimeMs, validated.Rows[i], now);
                stored.Add(buffer.CurrentBatchStored());
                EnsureSender(buffer);
            }
        }

        Interlocked.Add(ref _published, validated.Events.Count);
        PipelineMeter.EventsPublished.Add(validated.Events.Count, PipelineMeter.Pipeline(definition.Name));
        return Task.WhenAll(stored);
    }

    /// <summary>
    /// Events of one partition waiting to be sent, in columns; grouped by key when an item is cut. Guarded by its own
    /// lock; its sender runs one item at a time.
    /// </summary>
    internal sealed class PartitionBuffer(string pipeline, int partition, string[] fields, IAsyncStream<PartitionBatch> stream)
    {
        private readonly Dictionary<string, int> _keyIndex = new(StringComparer.Ordinal);
        private readonly List<string> _keys = [];
        private readonly List<int> _eventKeys = [];
        private readonly List<long> _times = [];
        private readonly List<double> _values = [];
        private List<RequestTag>? _requests;
        private List<int>? _eventRequests;
        private TaskCompletionSource? _waiters;
        private TaskCompletionSource? _room;
        private TaskCompletionSource? _full;

        public string Pipeline { get; } = pipeline;
        public int Partition { get; } = partition;
        public IAsyncStream<PartitionBatch> Stream { get; } = stream;
        public int Count => _times.Count;
        public long FirstAddedAt { get; private set; }
        public bool FlushRequested { get; private set; }

        /// <summary>The running sender, if any (under the lock).</summary>
        public Task? Sending { get; set; }

        /// <summary>The sequence of the partition's last item.</summary>
        public long LastSequence { get; private set; }

        /// <summary>The highest sequence the partition reported applied (sender only).</summary>
        public long Applied { get; set; }

        /// <summary>The index of a tagged request among the buffered ones (added if new).</summary>
        public int AddRequest(RequestTag request)
        {
            _requests ??= [];
            if (_eventRequests is null)
            {
                _eventRequests = new List<int>(_times.Count + 64);
                for (var i = 0; i < _times.Count; i++) _eventRequests.Add(-1);
            }

            var at = _requests.IndexOf(request);
            if (at >= 0) return at;
            _requests.Add(request);
            return _requests.Count - 1;
        }

        public void Add(string key, long time, double[] row, long timestamp, int request = -1)
        {
            _eventRequests?.Add(request);
            if (_times.Count == 0) FirstAddedAt = timestamp;
            if (!_keyIndex.TryGetValue(key, out var index))
            {
                _keyIndex[key] = index = _keys.Count;
                _keys.Add(key);
            }

            _eventKeys.Add(index);
            _times.Add(time);
            _values.AddRange(row);
        }

        /// <summary>Completes when the events buffered now are stored (or their item failed for good).</summary>
        public Task CurrentBatchStored() => (_waiters ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

        /// <summary>Asks the sender to send what is buffered without lingering; completes when it is stored.</summary>
        public Task Flush()
        {
            if (Count > 0) FlushRequested = true;
            _full?.TrySetResult();
            return Count > 0 ? CurrentBatchStored() : Sending ?? Task.CompletedTask;
        }

        /// <summary>Completes when the buffer has room again (the sender cut an item).</summary>
        public Task RoomAsync()
        {
            _full?.TrySetResult();
            return (_room ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }

        /// <summary>Waits for the linger to end, or less when the buffer fills or is flushed.</summary>
        public Task WaitForFullAsync(TimeSpan linger, TimeProvider time)
        {
            Task full;
            lock (this)
            {
                if (FlushRequested || _room is not null) return Task.CompletedTask;
                if (_full is null || _full.Task.IsCompleted) _full = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                full = _full.Task;
            }

            return Task.WhenAny(full, Task.Delay(linger, time));
        }

        /// <summary>Cuts the buffered events into the partition's next item, grouped by key (under the lock).</summary>
        public (PartitionBatch Batch, TaskCompletionSource? Waiters) Cut(Guid producer, long nowMs, long openFrom)
        {
            var eventRequests = _eventRequests is null ? null : new int[_eventRequests.Count];
            var width = fields.Length;
            var ends = new int[_keys.Count];
            foreach (var k in _eventKeys) ends[k]++;
            var starts = new int[_keys.Count];
            for (int k = 0, at = 0; k < ends.Length; k++)
            {
                starts[k] = at;
                at += ends[k];
                ends[k] = at;
            }

            var times = new long[_times.Count];
            var values = new double[_values.Count];
            for (var i = 0; i < _eventKeys.Count; i++)
            {
                var to = starts[_eventKeys[i]]++;
                times[to] = _times[i];
                if (eventRequests is not null) eventRequests[to] = _eventRequests![i];
                for (var f = 0; f < width; f++) values[to * width + f] = _values[i * width + f];
            }

            var batch = new PartitionBatch(Partition, producer, ++LastSequence, fields, [.. _keys], ends, times, values, nowMs,
                _requests is null ? null : [.. _requests], eventRequests, openFrom);
            var waiters = _waiters;
            _requests = null;
            _eventRequests = null;
            _keyIndex.Clear();
            _keys.Clear();
            _eventKeys.Clear();
            _times.Clear();
            _values.Clear();
            _waiters = null;
            FlushRequested = false;
            _full = null;
            _room?.TrySetResult();
            _room = null;
            return (batch, waiters);
        }
    }
}

/// <summary>A request's events, every one valid, ready for <see cref="PipelineClient.PublishAndWaitAsync"/>.</summary>
public sealed class ValidatedEvents
{
    internal ValidatedEvents(string pipeline, string[] fields, IReadOnlyList<PipelineEvent> events, double[][] rows)
    {
        Pipeline = pipeline;
        Fields = fields;
        Events = events;
        Rows = rows;
    }

    /// <summary>The pipeline.</summary>
    public string Pipeline { get; }

    /// <summary>How many events.</summary>
    public int Count => Events.Count;

    internal string[] Fields { get; }

    internal IReadOnlyList<PipelineEvent> Events { get; }

    internal double[][] Rows { get; }
}

/// <summary>An event of a request is invalid; <see cref="Index"/> says which (0-based). Nothing of the request was published.</summary>
public sealed class InvalidEventException(int index, string problem) : ArgumentException($"event {index}: {problem}")
{
    /// <summary>The invalid event's position in the request.</summary>
    public int Index { get; } = index;
}

/// <summary>The pipeline named is not one the cluster runs.</summary>
public sealed class UnknownPipelineException(string message) : ArgumentException(message);

/// <summary>Publishes your own record type through a <see cref="PipelineClient"/>.</summary>
public sealed class TypedPublisher<T>(PipelineClient client, string pipeline, Func<T, string> key, Func<T, DateTimeOffset> time, (string Field, Func<T, double> Value)[] fields)
{
    /// <summary>Converts and publishes one item.</summary>
    public Task PublishAsync(T item, CancellationToken cancellationToken = default) =>
        client.PublishAsync(pipeline, new PipelineEvent(
            key(item),
            time(item).ToUnixTimeMilliseconds(),
            fields.ToDictionary(f => f.Field, f => f.Value(item), StringComparer.Ordinal)), cancellationToken);
}

/// <summary>Batches that could not be delivered after every attempt; the events in them were not applied.</summary>
public sealed class PublishFailedException(IReadOnlyList<Exception> failures)
    : AggregateException($"{failures.Count} batch(es) could not be delivered: {failures[0].Message}", failures);
