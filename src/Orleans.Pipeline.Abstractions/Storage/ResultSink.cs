using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Storage;

/// <summary>
/// Where a key grain records what it produced, before it writes its own state: the results table of cluster mode.
/// A write must be idempotent (a batch redelivered after a crash writes the same rows again) and must throw when it
/// did not happen, so that the batch is not acknowledged.
/// </summary>
public interface IResultSink
{
    /// <summary>Records one batch's (or timer tick's) output.</summary>
    Task WriteAsync(SinkWrite write, CancellationToken cancellationToken = default);
}

/// <summary>One grain step's output for <see cref="IResultSink"/>.</summary>
/// <param name="Pipeline">The pipeline.</param>
/// <param name="Key">The key.</param>
/// <param name="Results">Window emissions in order.</param>
/// <param name="LateEvents">Events that were too late, each identified by its batch and index.</param>
/// <param name="DeadLetters">What was not applied, with the reason.</param>
public sealed record SinkWrite(
    string Pipeline,
    string Key,
    IReadOnlyList<WindowResult> Results,
    IReadOnlyList<LateEventRecord> LateEvents,
    IReadOnlyList<DeadLetter> DeadLetters)
{
    /// <summary>Nothing to record.</summary>
    public bool IsEmpty => Results.Count == 0 && LateEvents.Count == 0 && DeadLetters.Count == 0;
}

/// <summary>A late event and where it came from: (producer, sequence, index) identifies it across redeliveries.</summary>
public sealed record LateEventRecord(Guid ProducerId, long Sequence, int Index, LateEvent Event);

/// <summary>Something the pipeline did not apply. <paramref name="Index"/> is −1 for a whole batch.</summary>
public sealed record DeadLetter(Guid ProducerId, long Sequence, int Index, string Reason, string? Detail);

/// <summary>Embedded mode: no results table; the grain's state keeps recent closed windows queryable.</summary>
public sealed class NoResultSink : IResultSink
{
    /// <inheritdoc />
    public Task WriteAsync(SinkWrite write, CancellationToken cancellationToken = default) => Task.CompletedTask;
}
