using System.Diagnostics;
namespace Orleans.Pipeline.Client;

/// <summary>
/// Events of one partition waiting to be sent, in columns; grouped by key when an item is cut. Guarded by its own
/// lock (the buffer itself): publishers add under it, and the partition's <see cref="PartitionSender"/> cuts under
/// it and sends one item at a time.
/// </summary>
internal sealed class PartitionBuffer(string pipeline, int partition, string[] fields)
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
    public int Count => _times.Count;

    /// <summary>
    /// Events at which the buffer is full: an item is cut and publishers wait for room. Set by the partition's sender
    /// between a floor and <see cref="PipelineClientOptions.MaxBatchSize"/>, from how long its items take to apply.
    /// </summary>
    public int Limit { get; set; } = int.MaxValue;
    public long FirstAddedAt { get; private set; }
    public bool FlushRequested { get; private set; }

    /// <summary>The running sender loop, if any (under the lock).</summary>
    public Task? Sending { get; set; }

    /// <summary>The sequence of the partition's last item cut.</summary>
    public long LastSequence { get; private set; }

    /// <summary>The highest sequence the partition reported applied (written by the sender).</summary>
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

    /// <summary>Traced publishers whose events are buffered (at most <see cref="MaxPublisherLinks"/>): the send's links.</summary>
    private List<ActivityContext>? _publishers;

    private const int MaxPublisherLinks = 32;

    /// <summary>The traced publishers of the buffered events, as links for the item's send span; forgets them.</summary>
    public ActivityLink[]? TakePublishers()
    {
        if (_publishers is not { Count: > 0 } publishers) return null;
        var links = publishers.Select(p => new ActivityLink(p)).ToArray();
        publishers.Clear();
        return links;
    }

    public void Add(string key, long time, double[] row, long timestamp, int request = -1)
    {
        if (Activity.Current is { } publisher && PipelineTracing.Source.HasListeners())
        {
            _publishers ??= [];
            if (_publishers.Count < MaxPublisherLinks && (_publishers.Count == 0 || _publishers[^1] != publisher.Context)) _publishers.Add(publisher.Context);
        }

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

    /// <summary>Completes when the events buffered now are stored (or fails when their item failed for good).</summary>
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

    /// <summary>
    /// Cuts the buffered events into the partition's next item, grouped by key (under the lock), and hands over
    /// whoever waits for them. The item's sequence is assigned here, at the cut and under the lock: items are numbered
    /// 1, 2, 3, … in the order they are cut, each number is used once, and a retry resends the same item (the sender
    /// never cuts again to retry), so the partition can apply each (producer, sequence) once and in order.
    /// </summary>
    public (PartitionBatch Batch, TaskCompletionSource? Waiters) Cut(Guid producer, long nowMs, long openFrom, long publishedAtMs = 0)
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
            _requests is null ? null : [.. _requests], eventRequests, openFrom, PublishedAtMs: publishedAtMs);
        var waiters = _waiters;
        Clear();
        return (batch, waiters);
    }

    /// <summary>
    /// Drops the buffered events (under the lock), failing whoever waits for them with <paramref name="failure"/> and
    /// letting waiting publishers go on: the sender's last resort when it cannot go on, so that nobody waits forever.
    /// Returns how many events were dropped.
    /// </summary>
    public int Discard(Exception failure)
    {
        var dropped = Count;
        var waiters = _waiters;
        Clear();
        waiters?.TrySetException(failure);
        return dropped;
    }

    private void Clear()
    {
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
    }
}
