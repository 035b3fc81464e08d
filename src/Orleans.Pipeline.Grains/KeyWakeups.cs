using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace Orleans.Pipeline.Grains;

/// <summary>
/// When the keys on this silo whose windows only time can close (idle timeouts, early firing, processing time) are
/// next due, and one loop that wakes each key once its time has come: no timer per key, and a key costs a call only
/// when time changes something (<see cref="Windowing.WindowEngine.NextAdvanceDue"/>). Dues are on the key's own clock,
/// its partition's idle clock (<see cref="PartitionLags"/>) in event time with an idle timeout. A key need not stay
/// active for its word to count: the wake activates it again. Kept in memory; after the silo stops, a key closes its
/// windows with its next event, or (cluster mode) its reminder.
/// </summary>
public sealed partial class KeyWakeups : IDisposable, ILifecycleParticipant<ISiloLifecycle>
{
    /// <summary>How often the loop looks for due keys.</summary>
    public static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(50);

    /// <summary>Wake calls in flight at most.</summary>
    private const int MaxWakesInFlight = 1_000;

    private readonly KeyGrainReferences _keys;
    private readonly PartitionLags _lags;
    private readonly TimeProvider _time;
    private readonly ILogger<KeyWakeups> _logger;
    private readonly ConcurrentDictionary<(string Pipeline, int Partition), Schedule> _schedules = new();
    private readonly SiloLoop _loop;

    public KeyWakeups(KeyGrainReferences keys, PartitionLags lags, [FromKeyedServices(PipelineTime.Key)] TimeProvider time, ILogger<KeyWakeups> logger)
    {
        _keys = keys;
        _lags = lags;
        _time = time;
        _logger = logger;
        _loop = new SiloLoop(nameof(KeyWakeups), Tick, TickAsync);
    }

    /// <summary>
    /// One partition's keys by due time. Each key has one current due (<see cref="Due"/>) and at least one queue entry
    /// no later than it; entries that no longer match are skipped (or queued again at the key's later due) when they
    /// come up, so moving a key's due later, as every event does, costs no queue operation.
    /// </summary>
    private sealed class Schedule(bool onPartitionClock)
    {
        public readonly bool OnPartitionClock = onPartitionClock;
        public readonly Dictionary<string, long> Due = new(StringComparer.Ordinal);
        public readonly PriorityQueue<string, long> Order = new();
    }

    /// <summary>
    /// Wakes <paramref name="key"/> once its clock reaches <paramref name="due"/>, replacing its earlier word.
    /// <paramref name="onPartitionClock"/>: the key measures time on its partition's idle clock.
    /// </summary>
    public void WakeAt(string pipeline, int partition, string key, long due, bool onPartitionClock)
    {
        var schedule = _schedules.GetOrAdd((pipeline, partition), _ => new Schedule(onPartitionClock));
        lock (schedule)
        {
            // A key already waiting has a queue entry no later than its old due: still early enough unless the due
            // moved earlier.
            var waiting = schedule.Due.TryGetValue(key, out var current);
            schedule.Due[key] = due;
            if (!waiting || due < current) schedule.Order.Enqueue(key, due);
        }

        _loop.EnsureStarted();
    }

    /// <summary>The key holds nothing time can close any more.</summary>
    public void Forget(string pipeline, int partition, string key)
    {
        if (!_schedules.TryGetValue((pipeline, partition), out var schedule)) return;
        lock (schedule)
        {
            schedule.Due.Remove(key);
        }
    }

    /// <summary>Takes the keys of <paramref name="schedule"/> due at <paramref name="clock"/> off the schedule.</summary>
    private List<string> TakeDue(Schedule schedule, long clock)
    {
        var due = new List<string>();
        lock (schedule)
        {
            while (schedule.Order.TryPeek(out var key, out var at) && at <= clock)
            {
                schedule.Order.Dequeue();
                if (!schedule.Due.TryGetValue(key, out var current)) continue; // forgotten, or woken by another entry
                if (current > clock)
                {
                    // Its due moved later since: queued again at it (an entry too many is skipped when it comes up).
                    schedule.Order.Enqueue(key, current);
                    continue;
                }

                schedule.Due.Remove(key);
                due.Add(key);
            }
        }

        return due;
    }

    private async Task TickAsync(CancellationToken stopping)
    {
        var wakes = new List<Task>();
        foreach (var ((pipeline, partition), schedule) in _schedules)
        {
            var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            var clock = schedule.OnPartitionClock ? _lags.IdleClock(pipeline, partition, now, KeyWindowGrain.MaxIdleHoldMs) : now;
            foreach (var key in TakeDue(schedule, clock))
            {
                wakes.Add(WakeAsync(pipeline, partition, key));
                if (wakes.Count < MaxWakesInFlight) continue;
                await Task.WhenAll(wakes);
                wakes.Clear();
            }
        }

        await Task.WhenAll(wakes);
    }

    private async Task WakeAsync(string pipeline, int partition, string key)
    {
        try
        {
            await _keys.Get(pipeline, key).WakeAsync();
        }
        catch (Exception e) when (!_loop.Stopping)
        {
            // Not lost: tried again a second later (a key that fails to store keeps its windows), unless the key has
            // left word since.
            LogWakeFailed(e, pipeline, key);
            var retry = _time.GetUtcNow().ToUnixTimeMilliseconds() + 1_000;
            var schedule = _schedules[(pipeline, partition)];
            lock (schedule)
            {
                if (schedule.Due.TryAdd(key, retry)) schedule.Order.Enqueue(key, retry);
            }
        }
        catch
        {
            // Stopping.
        }
    }

    public void Participate(ISiloLifecycle lifecycle) => _loop.Participate(lifecycle);

    public void Dispose() => _loop.Dispose();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Waking key '{Key}' of pipeline '{Pipeline}' to close windows by time failed; tried again in a second")]
    private partial void LogWakeFailed(Exception exception, string pipeline, string key);
}
