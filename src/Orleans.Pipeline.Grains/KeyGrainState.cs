using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Grains;

/// <summary>What a key grain persists: the engine's state, the dedupe marks and the recent closed windows, in one write.</summary>
[GenerateSerializer, Alias("pipeline.key-grain-state")]
internal sealed class KeyGrainState
{
    /// <summary>The windowing engine's state; null before the first event.</summary>
    [Id(0)] public WindowState? Engine { get; set; }

    /// <summary>
    /// Per producer, the sequence up to which every batch has been applied (or given up as missing); a batch at or
    /// below it is a repeat unless it is in <see cref="Skipped"/>.
    /// </summary>
    [Id(1)] public Dictionary<Guid, long> LastSequence { get; set; } = [];

    /// <summary>Recent final results and updates, newest last.</summary>
    [Id(2)] public List<WindowResult> Closed { get; set; } = [];

    /// <summary>Batches dropped as repeats.</summary>
    [Id(3)] public long DuplicateBatches { get; set; }

    /// <summary>Events refused by the grain (invalid time), not applied.</summary>
    [Id(4)] public long RejectedEvents { get; set; }

    /// <summary>Producers in the order they last sent, oldest first, to bound <see cref="LastSequence"/>.</summary>
    [Id(5)] public List<Guid> ProducerOrder { get; set; } = [];

    /// <summary>Batches that arrived ahead of a gap in their producer's sequence, held until the gap fills.</summary>
    [Id(6)] public List<PendingBatch> Pending { get; set; } = [];

    /// <summary>Per producer, sequences given up as missing; applied if they turn up after all.</summary>
    [Id(7)] public Dictionary<Guid, List<long>> Skipped { get; set; } = [];
}

/// <summary>A batch held behind a sequence gap, and when it arrived (Unix milliseconds).</summary>
[GenerateSerializer, Immutable, Alias("pipeline.pending-batch")]
internal sealed record PendingBatch([property: Id(0)] EventBatch Batch, [property: Id(1)] long ArrivedAtMs);
