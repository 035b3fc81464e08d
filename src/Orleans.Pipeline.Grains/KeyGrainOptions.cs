namespace Orleans.Pipeline.Grains;

/// <summary>How key grains persist their state; set by the hosting layer per deployment mode.</summary>
public sealed class KeyGrainOptions
{
    /// <summary>
    /// Zero: state is written with every slice, before the slice is acknowledged (write-through, nothing applied is
    /// ever lost). Positive: a key hands its state to the write-behind store with the first slice after this much
    /// time since its last write, and on deactivation and graceful shutdown; no timer per key, so a key that went
    /// quiet is written when it deactivates. Embedded mode uses a positive interval: its in-memory queues lose
    /// in-flight events on a crash anyway, and serializing every key's state with every slice would cost more than
    /// applying the events.
    /// </summary>
    public TimeSpan StateWriteInterval { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// How long a batch that arrived ahead of a gap in its producer's sequence waits for the missing batches. A
    /// durable stream redelivers a batch leased by a silo that died only after its visibility timeout, possibly
    /// after later batches of the same key: waiting keeps each producer's events in the order it sent them. When
    /// the wait runs out the held batches are applied and the missing ones recorded as dead letters (and still
    /// applied, once, if they arrive later).
    /// </summary>
    public TimeSpan SequenceGapTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Events a partition holds behind sequence gaps at most; beyond it the gaps are given up at once.</summary>
    public int MaxPendingEvents { get; set; } = 100_000;

    /// <summary>
    /// Also register a reminder while the key holds windows that time alone closes (idle timeout, processing time,
    /// early firing), so that they close even if the key's silo dies and no event arrives to reactivate it.
    /// Needs a reminder service (PostgreSQL mode).
    /// </summary>
    public bool UseReminders { get; set; }

    /// <summary>How often that reminder ticks (Orleans allows no less than its minimum reminder period, 1 minute by default).</summary>
    public TimeSpan ReminderPeriod { get; set; } = TimeSpan.FromMinutes(1);
}
