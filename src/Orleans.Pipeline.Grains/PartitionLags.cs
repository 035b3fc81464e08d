using System.Collections.Concurrent;

namespace Orleans.Pipeline.Grains;

/// <summary>
/// How far behind each partition is, as seen on this silo: when the oldest event of the latest item a key applied was
/// published, and when that was. A key's idle timeout is processing time at the key, and under overload a key's next
/// events can wait in the producer's buffer and the queue for longer than its timeout. Keys therefore measure
/// idleness on their partition's clock (<see cref="IdleClock"/>): it stands at the publishing time of what the
/// partition is applying, and moves on with the wall clock only once the partition has been quiet for as long as its
/// items last waited, since until then items published later may still be on their way. Every key of a partition on
/// this silo records the items it applies, so a key that gets no events still learns where its partition stands.
/// </summary>
public sealed class PartitionLags
{
    private readonly ConcurrentDictionary<string, Progress> _progress = new(StringComparer.Ordinal);

    /// <summary>Records that an item of <paramref name="partition"/> whose oldest event was published at <paramref name="publishedAtMs"/> was applied at <paramref name="nowMs"/>.</summary>
    public void Record(string pipeline, int partition, int partitions, long publishedAtMs, long nowMs)
    {
        if (publishedAtMs <= 0 || (uint)partition >= (uint)partitions) return;
        var progress = _progress.GetOrAdd(pipeline, _ => new Progress(partitions));
        if (partition >= progress.Published.Length) return;
        // Two words, not one: a reader may see one updated and not the other, which moves its clock by less than
        // one item's wait; the next record puts it right.
        Volatile.Write(ref progress.Published[partition], publishedAtMs);
        Volatile.Write(ref progress.Recorded[partition], nowMs);
    }

    /// <summary>How long the latest item of <paramref name="partition"/> waited between publishing and its key (0 when none was seen here).</summary>
    public long Of(string pipeline, int partition)
    {
        if (!_progress.TryGetValue(pipeline, out var progress) || (uint)partition >= (uint)progress.Published.Length) return 0;
        var published = Volatile.Read(ref progress.Published[partition]);
        return published == 0 ? 0 : Math.Max(0, Volatile.Read(ref progress.Recorded[partition]) - published);
    }

    /// <summary>
    /// The clock keys of <paramref name="partition"/> measure idleness by: the publishing time of the partition's
    /// latest applied item, moving on with <paramref name="nowMs"/> once the partition has been quiet for as long as
    /// that item waited; never behind <paramref name="nowMs"/> by more than <paramref name="maxHoldMs"/> (a producer
    /// whose clock runs behind looks like a wait), never ahead of it. <paramref name="nowMs"/> when nothing was seen.
    /// </summary>
    public long IdleClock(string pipeline, int partition, long nowMs, long maxHoldMs)
    {
        if (!_progress.TryGetValue(pipeline, out var progress) || (uint)partition >= (uint)progress.Published.Length) return nowMs;
        var published = Volatile.Read(ref progress.Published[partition]);
        if (published == 0) return nowMs;
        var recorded = Volatile.Read(ref progress.Recorded[partition]);
        var waited = Math.Max(0, recorded - published);
        var clock = published + Math.Max(0, nowMs - recorded - waited);
        return Math.Clamp(clock, nowMs - Math.Max(0, maxHoldMs), nowMs);
    }

    private sealed class Progress(int partitions)
    {
        public readonly long[] Published = new long[partitions];
        public readonly long[] Recorded = new long[partitions];
    }
}
