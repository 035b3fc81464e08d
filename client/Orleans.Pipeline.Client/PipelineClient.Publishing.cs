namespace Orleans.Pipeline.Client;

/// <summary>Publishing: buffering per partition, flushing, waiting until applied, tagged requests.</summary>
public sealed partial class PipelineClient
{
    private long _published;
    private long _peakBuffered;

    /// <summary>Events accepted by <c>PublishAsync</c>.</summary>
    public long PublishedEvents => Interlocked.Read(ref _published);

    /// <summary>
    /// The most events any one partition buffer held after a <c>PublishAsync</c>: at most
    /// <see cref="PipelineClientOptions.MaxBatchSize"/> plus one per concurrent publisher, however many keys are
    /// published. (<see cref="PublishAndWaitAsync"/> does not wait for room: its callers bound what they admit.)
    /// </summary>
    public long PeakBufferedEvents => Interlocked.Read(ref _peakBuffered);

    /// <summary>Times a publisher or sender waited because the pipeline was behind (backpressure).</summary>
    public long BackpressureWaits => _producer.Waits;

    /// <summary>
    /// Tags a new request of this producer, open until <see cref="CloseRequest"/>: while it is open, the partitions
    /// remember which of them applied its events, so that the request published again under the same tag (by any
    /// client, e.g. another gateway after this one died part way) is applied once. Close it once it can no longer be
    /// published again (its request id is marked done).
    /// </summary>
    public RequestTag OpenRequest() => _producer.OpenRequest();

    /// <summary>Closes a request tagged by <see cref="OpenRequest"/>: the partitions may forget it.</summary>
    public void CloseRequest(RequestTag request)
    {
        if (request.Producer != ProducerId) throw new ArgumentException($"request {request.Tag} was tagged by producer {request.Producer}, not this client ({ProducerId})", nameof(request));
        _producer.CloseRequest(request.Tag);
    }

    /// <summary>
    /// Validates and buffers one event; waits while its partition's buffer is full and the partition is behind.
    /// Throws <see cref="ArgumentException"/> naming the problem (unknown pipeline, missing key, time out of range, a
    /// missing or non-finite field); events accepted before stay accepted.
    /// </summary>
    public async Task PublishAsync(string pipeline, PipelineEvent item, CancellationToken cancellationToken = default)
    {
        var definition = await FindPublishableAsync(pipeline);
        var row = EventValidator.Validate(definition, _fields[definition.Name], item, _time.GetUtcNow().ToUnixTimeMilliseconds());
        var sender = SenderFor(definition, item.Key);
        var buffer = sender.Buffer;
        Task? room;
        lock (buffer)
        {
            buffer.Add(item.Key, item.TimeMs, row, _time.GetTimestamp());
            if (buffer.Count > Interlocked.Read(ref _peakBuffered)) Interlocked.Exchange(ref _peakBuffered, buffer.Count);
            room = buffer.Count >= buffer.Limit ? buffer.RoomAsync() : null;
            sender.EnsureRunning();
        }

        Interlocked.Increment(ref _published);
        PipelineMeter.EventsPublished.Add(1, PipelineMeter.Pipeline(definition.Name));
        if (room is not null)
        {
            _producer.Waited();
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
        foreach (var sender in Senders())
        {
            var buffer = sender.Buffer;
            lock (buffer)
            {
                if (buffer.Count == 0 && buffer.Sending is null) continue;
                stored.Add(buffer.Flush());
                sender.EnsureRunning();
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

        var failures = _producer.TakeFailures();
        if (failures.Count > 0) throw new PublishFailedException(failures);
    }

    /// <summary>
    /// Flushes, then waits until every key has applied (and stored) everything this client published: stronger than
    /// <see cref="FlushAsync"/>, which returns once the events are in the stream's queues.
    /// </summary>
    public async Task WaitUntilAppliedAsync(CancellationToken cancellationToken = default)
    {
        await FlushAsync(cancellationToken);
        foreach (var sender in Senders()) await AppliedSoFarAsync(sender).WaitAsync(cancellationToken);
    }

    /// <summary>Completes when the partition has applied every item the sender had cut when called.</summary>
    private static Task AppliedSoFarAsync(PartitionSender sender)
    {
        long last;
        lock (sender.Buffer) last = sender.Buffer.LastSequence;
        return last > 0 ? sender.WaitForAppliedAsync(last) : Task.CompletedTask;
    }

    /// <summary>
    /// Waits until the partitions of <paramref name="keys"/> have applied everything this client had stored for them
    /// when called (so, after a <see cref="PublishAndWaitAsync"/> of those keys' events: until their keys hold them; a
    /// query then sees them). Partitions this client never sent to have nothing to wait for.
    /// </summary>
    public async Task WaitUntilAppliedAsync(string pipeline, IEnumerable<string> keys, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var definition = await FindAsync(pipeline);
        var partitions = keys.Select(k => PipelineNames.PartitionOf(k, definition.Partitions)).ToHashSet();
        await Task.WhenAll(Senders().Where(s => s.Buffer.Pipeline == pipeline && partitions.Contains(s.Buffer.Partition)).Select(AppliedSoFarAsync))
            .WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Adds validated events (<see cref="ValidateAsync"/>) to their partitions' buffers, which fill up with other
    /// callers' events and go out when full or after the linger (so that many small requests still make few large
    /// items), and returns a task that completes when every one of these events is stored. Such items are never given
    /// up for errors a retry may cure: they are retried with the same sequence until stored, so waiting longer never
    /// publishes anything twice. An item refused outright (<see cref="ArgumentException"/>) fails the task.
    /// </summary>
    /// <remarks>
    /// A tagged request (<paramref name="request"/>: <see cref="OpenRequest"/>, or the tag another client gave it when
    /// it first published it) is applied once by each partition, however many clients publish it.
    /// </remarks>
    public Task PublishAndWaitAsync(ValidatedEvents validated, RequestTag? request = null)
    {
        var definition = _pipelines![validated.Pipeline];
        var now = _time.GetTimestamp();
        // Each partition's share goes into its buffer under one lock, so it travels in one item (a tagged request's
        // share is then applied there in full, or not at all) and the lock is taken once per partition, not per event.
        var byPartition = new List<int>?[definition.Partitions];
        var keys = validated.Keys;
        for (var i = 0; i < keys.Length; i++)
            (byPartition[PipelineNames.PartitionOf(keys[i], definition.Partitions)] ??= []).Add(i);
        var stored = new List<Task>();
        for (var partition = 0; partition < byPartition.Length; partition++)
        {
            if (byPartition[partition] is not { } indices) continue;
            var sender = SenderFor(definition, partition);
            var buffer = sender.Buffer;
            lock (buffer)
            {
                var index = request is { } tag ? buffer.AddRequest(tag) : -1;
                foreach (var i in indices) buffer.Add(keys[i], validated.Times[i], validated.Rows[i], now, index);
                stored.Add(buffer.CurrentBatchStored());
                sender.EnsureRunning();
            }
        }

        Interlocked.Add(ref _published, keys.Length);
        PipelineMeter.EventsPublished.Add(keys.Length, PipelineMeter.Pipeline(definition.Name));
        return Task.WhenAll(stored);
    }
}

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
