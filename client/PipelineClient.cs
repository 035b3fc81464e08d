using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Orleans.Pipeline.Windowing;
using Orleans.Runtime;
using Orleans.Streams;

namespace Orleans.Pipeline.Client;

/// <summary>Tuning of a <see cref="PipelineClient"/>.</summary>
public sealed class PipelineClientOptions
{
    /// <summary>Events per batch (one stream item, one state write in the key's grain).</summary>
    public int MaxBatchSize { get; set; } = 256;

    /// <summary>Batches sent but not yet acknowledged; when all are in flight, <c>PublishAsync</c> waits.</summary>
    public int MaxInFlightBatches { get; set; } = 64;

    /// <summary>How long a partly filled batch waits for more events before it is sent anyway.</summary>
    public TimeSpan Linger { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Attempts per batch before its failure is reported (each retry reuses the batch's sequence).</summary>
    public int MaxAttempts { get; set; } = 6;

    /// <summary>First retry delay; doubled per attempt.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(100);
}

/// <summary>
/// Publishes events to pipelines and reads their results. Events are validated, grouped per key into batches,
/// and sent with a bounded number of batches in flight: when the bound is reached <see cref="PublishAsync(string, PipelineEvent, CancellationToken)"/>
/// waits (backpressure). Each batch carries this client's producer id and a sequence; retries reuse them, and the
/// key's grain applies a batch at most once. Batches of one key are sent one after another, in order.
/// Dispose (or <see cref="FlushAsync"/>) to send what is buffered; a batch that failed every attempt makes the next
/// <see cref="FlushAsync"/> throw <see cref="PublishFailedException"/>, so nothing is lost silently.
/// </summary>
public sealed class PipelineClient : IAsyncDisposable
{
    private readonly IClusterClient _cluster;
    private readonly PipelineClientOptions _options;
    private readonly TimeProvider _time;
    private readonly IStreamProvider _streams;
    private readonly IStreamProvider _resultStreams;
    private readonly SemaphoreSlim _inFlight;
    private readonly Lock _gate = new();
    private readonly Dictionary<(string Pipeline, string Key), KeyBuffer> _buffers = [];
    private readonly ConcurrentDictionary<Task, byte> _sending = new();
    private readonly ConcurrentQueue<Exception> _failures = new();
    private readonly ITimer _linger;
    private Dictionary<string, PipelineDefinition>? _pipelines;
    private Dictionary<string, string[]> _fields = [];

    public PipelineClient(IClusterClient cluster, PipelineClientOptions? options = null, TimeProvider? time = null)
    {
        _cluster = cluster;
        _options = options ?? new PipelineClientOptions();
        if (_options.MaxBatchSize <= 0 || _options.MaxInFlightBatches <= 0 || _options.MaxAttempts <= 0)
            throw new ArgumentException("batch size, in-flight batches and attempts must be > 0", nameof(options));
        _time = time ?? TimeProvider.System;
        _streams = cluster.GetStreamProvider(PipelineNames.StreamProvider);
        _resultStreams = cluster.GetStreamProvider(PipelineNames.ResultsStreamProvider);
        _inFlight = new SemaphoreSlim(_options.MaxInFlightBatches, _options.MaxInFlightBatches);
        _linger = _time.CreateTimer(_ => SendLingering(), null, _options.Linger, _options.Linger);
    }

    /// <summary>This client's producer id, carried by every batch it sends.</summary>
    public Guid ProducerId { get; } = Guid.NewGuid();

    /// <summary>Events accepted by <c>PublishAsync</c>.</summary>
    public long PublishedEvents => Interlocked.Read(ref _published);

    private long _published;

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
    /// Validates and buffers one event; sends its key's batch when full. Throws <see cref="ArgumentException"/>
    /// naming the problem (unknown pipeline, missing key, time out of range, a missing or non-finite field); events
    /// accepted before stay accepted.
    /// </summary>
    public async Task PublishAsync(string pipeline, PipelineEvent item, CancellationToken cancellationToken = default)
    {
        var definition = await FindAsync(pipeline);
        var fields = _fields[definition.Name];
        var row = Validate(definition, fields, item);

        KeyBuffer? full = null;
        lock (_gate)
        {
            if (!_buffers.TryGetValue((pipeline, item.Key), out var buffer))
                _buffers[(pipeline, item.Key)] = buffer = new KeyBuffer(pipeline, item.Key, fields);
            buffer.Add(item.TimeMs, row, _time.GetTimestamp());
            if (buffer.Count >= _options.MaxBatchSize) full = buffer;
        }

        Interlocked.Increment(ref _published);
        if (full is not null) await SendAsync(full, cancellationToken);
    }

    /// <summary>Publishes events in order; stops at the first invalid one (those before it stay accepted).</summary>
    public async Task PublishAsync(string pipeline, IEnumerable<PipelineEvent> items, CancellationToken cancellationToken = default)
    {
        foreach (var item in items) await PublishAsync(pipeline, item, cancellationToken);
    }

    /// <summary>A typed publisher: your own records, with selectors for key, time and fields.</summary>
    public TypedPublisher<T> For<T>(string pipeline, Func<T, string> key, Func<T, DateTimeOffset> time, params (string Field, Func<T, double> Value)[] fields) =>
        new(this, pipeline, key, time, fields);

    /// <summary>Sends every buffered event and waits until all batches are acknowledged; throws if any failed.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        List<KeyBuffer> pending;
        lock (_gate) pending = _buffers.Values.Where(b => b.Count > 0).ToList();
        foreach (var buffer in pending) await SendAsync(buffer, cancellationToken);
        await Task.WhenAll(_sending.Keys);
        if (!_failures.IsEmpty)
        {
            var failures = new List<Exception>();
            while (_failures.TryDequeue(out var failure)) failures.Add(failure);
            throw new PublishFailedException(failures);
        }
    }

    /// <summary>A key's held and recently closed windows.</summary>
    public Task<KeyWindows> QueryAsync(string pipeline, string key) =>
        _cluster.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(pipeline, key)).GetWindowsAsync();

    /// <summary>
    /// Calls <paramref name="onBatch"/> for every result batch the pipeline emits from the moment this returns, until
    /// the returned handle is disposed. Delivery of the next batch waits for the handler.
    /// </summary>
    public async Task<IAsyncDisposable> SubscribeAsync(string pipeline, Func<ResultBatch, Task> onBatch)
    {
        await FindAsync(pipeline);
        var stream = _resultStreams.GetStream<ResultBatch>(StreamId.Create(PipelineNames.ResultsNamespace, pipeline));
        var handle = await stream.SubscribeAsync((batch, _) => onBatch(batch));
        return new Subscription(handle);
    }

    /// <summary>
    /// Every result batch the pipeline emits from the first <c>MoveNextAsync</c> on, until cancelled. Delivery waits
    /// while the consumer is behind (a bounded buffer of <paramref name="buffer"/> batches).
    /// </summary>
    public async IAsyncEnumerable<ResultBatch> ReadResultsAsync(string pipeline, int buffer = 1024, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var channel = Channel.CreateBounded<ResultBatch>(buffer);
        await using var subscription = await SubscribeAsync(pipeline, batch => channel.Writer.WriteAsync(batch, cancellationToken).AsTask());
        await foreach (var batch in channel.Reader.ReadAllAsync(cancellationToken)) yield return batch;
    }

    private sealed class Subscription(StreamSubscriptionHandle<ResultBatch> handle) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await handle.UnsubscribeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _linger.DisposeAsync();
        await FlushAsync();
        _inFlight.Dispose();
    }

    private async Task<PipelineDefinition> FindAsync(string pipeline)
    {
        var pipelines = await GetPipelinesAsync();
        if (pipeline is null || !pipelines.TryGetValue(pipeline, out var definition))
            throw new UnknownPipelineException($"unknown pipeline '{pipeline}' (known: {string.Join(", ", pipelines.Keys.Order(StringComparer.Ordinal))})");
        return definition;
    }

    private static double[] Validate(PipelineDefinition definition, IReadOnlyList<string> fields, PipelineEvent item)
    {
        ArgumentNullException.ThrowIfNull(item);
        if (string.IsNullOrEmpty(item.Key))
            throw new ArgumentException($"pipeline '{definition.Name}': event key is missing", nameof(item));
        if (item.Key.Length > PipelineNames.MaxKeyLength)
            throw new ArgumentException($"pipeline '{definition.Name}': event key is longer than {PipelineNames.MaxKeyLength} characters", nameof(item));
        if (definition.Windowing.TimeMode == TimeMode.EventTime && !EventTimeRange.Contains(item.TimeMs))
            throw new ArgumentOutOfRangeException(nameof(item), item.TimeMs, $"pipeline '{definition.Name}', key '{item.Key}': event time {item.TimeMs} is outside [{EventTimeRange.MinMs}, {EventTimeRange.MaxMs}] Unix milliseconds");

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

    private void SendLingering()
    {
        List<KeyBuffer> due;
        var now = _time.GetTimestamp();
        lock (_gate) due = _buffers.Values.Where(b => b.Count > 0 && _time.GetElapsedTime(b.FirstAddedAt, now) >= _options.Linger).ToList();
        foreach (var buffer in due) _ = SendAsync(buffer, CancellationToken.None);
    }

    /// <summary>Cuts the key's batch and hands it to a sender once an in-flight slot is free (the backpressure point).</summary>
    private async Task SendAsync(KeyBuffer buffer, CancellationToken cancellationToken)
    {
        await _inFlight.WaitAsync(cancellationToken);
        Pending? pending;
        lock (_gate) pending = buffer.Cut();
        if (pending is null)
        {
            _inFlight.Release();
            return;
        }

        var task = SendBatchAsync(buffer, pending);
        _sending.TryAdd(task, 0);
        _ = task.ContinueWith(t => _sending.TryRemove(t, out _), TaskScheduler.Default);
    }

    private async Task SendBatchAsync(KeyBuffer buffer, Pending pending)
    {
        try
        {
            // A batch someone waits for is never given up: it is retried (same sequence) until it is stored.
            await DeliverAsync(buffer, pending.Times, pending.Values, persistent: pending.Waiters is not null);
            pending.Waiters?.TrySetResult();
        }
        catch (Exception e)
        {
            _failures.Enqueue(new InvalidOperationException(
                $"pipeline '{buffer.Pipeline}', key '{buffer.Key}': a batch of {pending.Times.Length} events was not delivered after {_options.MaxAttempts} attempts", e));
        }
        finally
        {
            _inFlight.Release();
        }
    }

    /// <summary>
    /// Sends one batch, retrying with the same sequence; throws when every attempt failed (never, when
    /// <paramref name="persistent"/>: then it retries with a delay capped at 5 s until the batch is stored). One batch
    /// of a key at a time, numbered 1, 2, 3, … per key: the key's grain applies them in this order, holding one that
    /// arrives ahead of a gap until the gap fills.
    /// </summary>
    private async Task DeliverAsync(KeyBuffer buffer, long[] times, double[] values, bool persistent)
    {
        await buffer.SendLock.WaitAsync();
        try
        {
            var batch = new EventBatch(buffer.Key, ProducerId, ++buffer.LastSequence, buffer.Fields, times, values, _time.GetUtcNow().ToUnixTimeMilliseconds());
            var stream = _streams.GetStream<EventBatch>(StreamId.Create(PipelineNames.EventsNamespace, PipelineNames.StreamKey(buffer.Pipeline, buffer.Key)));
            var delay = _options.RetryDelay;
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await stream.OnNextAsync(batch);
                    return;
                }
                catch (Exception e) when ((persistent || attempt < _options.MaxAttempts) && e is not ArgumentException)
                {
                    await Task.Delay(delay, _time);
                    delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
                }
            }
        }
        finally
        {
            buffer.SendLock.Release();
        }
    }

    /// <summary>
    /// Validates every event of a request (all or nothing: the first invalid one throws <see cref="InvalidEventException"/>
    /// with its index, an unknown pipeline <see cref="UnknownPipelineException"/>), without publishing anything.
    /// </summary>
    public async Task<ValidatedEvents> ValidateAsync(string pipeline, IReadOnlyList<PipelineEvent> events)
    {
        var definition = await FindAsync(pipeline);
        var fields = _fields[definition.Name];
        var rows = new double[events.Count][];
        for (var i = 0; i < events.Count; i++)
        {
            try
            {
                rows[i] = Validate(definition, fields, events[i]);
            }
            catch (ArgumentException e)
            {
                throw new InvalidEventException(i, e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal));
            }
        }

        return new ValidatedEvents(definition.Name, fields, events, rows);
    }

    /// <summary>
    /// Adds validated events to their keys' batches, which fill up with other callers' events of the same keys and
    /// go out when full or after the linger (so that many small requests still make few large batches), and returns
    /// a task that completes when every one of these events is stored. Such batches are never given up: they are
    /// retried with the same sequence until stored, so waiting longer never publishes anything twice.
    /// </summary>
    public Task PublishAndWaitAsync(ValidatedEvents validated)
    {
        var stored = new HashSet<Task>();
        List<(KeyBuffer Buffer, Pending Pending)>? full = null;
        lock (_gate)
        {
            var now = _time.GetTimestamp();
            for (var i = 0; i < validated.Events.Count; i++)
            {
                var item = validated.Events[i];
                if (!_buffers.TryGetValue((validated.Pipeline, item.Key), out var buffer))
                    _buffers[(validated.Pipeline, item.Key)] = buffer = new KeyBuffer(validated.Pipeline, item.Key, validated.Fields);
                buffer.Add(item.TimeMs, validated.Rows[i], now);
                stored.Add(buffer.CurrentBatchStored());
                if (buffer.Count >= _options.MaxBatchSize) (full ??= []).Add((buffer, buffer.Cut()!));
            }
        }

        Interlocked.Add(ref _published, validated.Events.Count);
        foreach (var (buffer, pending) in full ?? []) _ = SendCutAsync(buffer, pending);
        return Task.WhenAll(stored);
    }

    private async Task SendCutAsync(KeyBuffer buffer, Pending pending)
    {
        await _inFlight.WaitAsync();
        var task = SendBatchAsync(buffer, pending);
        _sending.TryAdd(task, 0);
        _ = task.ContinueWith(t => _sending.TryRemove(t, out _), TaskScheduler.Default);
    }

    /// <summary>A cut batch; <paramref name="Waiters"/> completes when it is stored (callers of <see cref="PublishAndWaitAsync"/>).</summary>
    internal sealed record Pending(long[] Times, double[] Values, TaskCompletionSource? Waiters);

    /// <summary>Events of one key waiting to be sent.</summary>
    internal sealed class KeyBuffer(string pipeline, string key, string[] fields)
    {
        private readonly List<long> _times = [];
        private readonly List<double> _values = [];

        public string Pipeline { get; } = pipeline;
        public string Key { get; } = key;
        public string[] Fields { get; } = fields;
        public SemaphoreSlim SendLock { get; } = new(1, 1);

        /// <summary>The sequence of the key's last batch (under <see cref="SendLock"/>).</summary>
        public long LastSequence { get; set; }
        public long FirstAddedAt { get; private set; }
        public int Count => _times.Count;

        public void Add(long time, double[] row, long timestamp)
        {
            if (_times.Count == 0) FirstAddedAt = timestamp;
            _times.Add(time);
            _values.AddRange(row);
        }

        private TaskCompletionSource? _waiters;

        /// <summary>Completes when the batch now being filled is stored (under the client's lock).</summary>
        public Task CurrentBatchStored() => (_waiters ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

        public Pending? Cut()
        {
            if (_times.Count == 0) return null;
            var pending = new Pending([.. _times], [.. _values], _waiters);
            _times.Clear();
            _values.Clear();
            _waiters = null;
            return pending;
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
