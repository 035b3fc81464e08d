using System.Collections.Concurrent;

namespace Orleans.Pipeline.Grains;

/// <summary>
/// How long the latest item of each partition waited between its producer and its keys, as seen on this silo: the
/// partition's queueing delay. A key's idle timeout is processing time at the key, and under overload a key's next
/// events can wait in the queue for longer than its timeout. Keys therefore measure idleness on a clock held back by
/// their partition's delay (<see cref="IdleClock"/>): a key is idle once the partition has delivered what was
/// published a whole timeout after its last event, not merely when a timeout has passed while its events queue.
/// Every key of a partition on this silo records the delay of the slices it applies, so a key that gets no events
/// still learns how far behind its partition is.
/// </summary>
public sealed class PartitionLags
{
    private readonly ConcurrentDictionary<string, long[]> _lags = new(StringComparer.Ordinal);

    /// <summary>Records the delay of an item of <paramref name="partition"/> applied at <paramref name="nowMs"/>.</summary>
    public void Record(string pipeline, int partition, int partitions, long sentAtMs, long nowMs)
    {
        if (sentAtMs <= 0 || (uint)partition >= (uint)partitions) return;
        var lags = _lags.GetOrAdd(pipeline, _ => new long[partitions]);
        if (partition < lags.Length) Volatile.Write(ref lags[partition], Math.Max(0, nowMs - sentAtMs));
    }

    /// <summary>The latest delay of <paramref name="partition"/> (0 when none was seen here).</summary>
    public long Of(string pipeline, int partition) =>
        _lags.TryGetValue(pipeline, out var lags) && (uint)partition < (uint)lags.Length ? Volatile.Read(ref lags[partition]) : 0;

    /// <summary>
    /// The clock a key of <paramref name="partition"/> measures idleness by: <paramref name="nowMs"/> held back by the
    /// partition's delay, at most <paramref name="maxHoldMs"/> (a producer whose clock runs behind looks like a delay).
    /// </summary>
    public long IdleClock(string pipeline, int partition, long nowMs, long maxHoldMs) => nowMs - Math.Min(Of(pipeline, partition), Math.Max(0, maxHoldMs));
}
