using Microsoft.Extensions.DependencyInjection;
using Orleans.Concurrency;

namespace Orleans.Pipeline.Grains;

/// <summary>How large the embedded mode's event queues may grow.</summary>
public sealed class EmbeddedQueueOptions
{
    /// <summary>Events held per queue at most; an enqueue beyond it waits (one entry larger than this is still taken when the queue is empty).</summary>
    public int Capacity { get; set; } = 262_144;

    /// <summary>How long an enqueue waits for room before it fails (the producer then retries).</summary>
    public TimeSpan EnqueueTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// A bounded in-memory queue (see <see cref="IEmbeddedQueueGrain"/>). Reentrant, so that the stream's reader can take
/// entries while producers wait for room.
/// </summary>
[Reentrant]
internal sealed class EmbeddedQueueGrain(EmbeddedQueueOptions options, [FromKeyedServices(PipelineTime.Key)] TimeProvider time) : Grain, IEmbeddedQueueGrain
{
    private readonly Queue<QueuedEvents> _entries = new();
    private TaskCompletionSource _room = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _events;
    private long _peak;
    private long _waited;
    private long _sequence;

    public async Task EnqueueAsync(QueuedEvents items)
    {
        var started = time.GetTimestamp();
        if (_events > 0 && _events + items.EventCount > options.Capacity) _waited++;
        while (_events > 0 && _events + items.EventCount > options.Capacity)
        {
            var left = options.EnqueueTimeout - time.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
                throw new TimeoutException($"the embedded event queue has held {_events:N0} events (its capacity is {options.Capacity:N0}) for {options.EnqueueTimeout.TotalSeconds:0} s: the pipeline's grains are behind; retry");
            try
            {
                await _room.Task.WaitAsync(left, time);
            }
            catch (TimeoutException)
            {
                // Checked (and refused) at the top of the loop.
            }
        }

        _entries.Enqueue(items with { Sequence = ++_sequence });
        _events += items.EventCount;
        _peak = Math.Max(_peak, _events);
    }

    public Task<EmbeddedQueueStats> GetStatsAsync() => Task.FromResult(new EmbeddedQueueStats(_events, _peak, options.Capacity, _waited));

    public Task<QueuedEvents[]> DequeueAsync(int max)
    {
        if (_entries.Count == 0) return Task.FromResult(Array.Empty<QueuedEvents>());
        var taken = new QueuedEvents[Math.Min(max, _entries.Count)];
        for (var i = 0; i < taken.Length; i++)
        {
            taken[i] = _entries.Dequeue();
            _events -= taken[i].EventCount;
        }

        var room = _room;
        _room = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        room.TrySetResult();
        return Task.FromResult(taken);
    }
}
