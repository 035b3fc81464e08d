using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Grains;

/// <summary>What a key grain persists, in one write: the engine's state, the last applied delivery of its partition and the recent closed windows.</summary>
[GenerateSerializer, Alias("pipeline.key-grain-state.v2")]
internal sealed class KeyGrainState
{
    /// <summary>The windowing engine's state; null before the first event.</summary>
    [Id(0)] public WindowState? Engine { get; set; }

    /// <summary>The partition whose deliveries <see cref="LastDelivery"/> counts (−1 before the first slice).</summary>
    [Id(1)] public int Partition { get; set; } = -1;

    /// <summary>The partition's last delivery applied: a slice at or below it is a repeat.</summary>
    [Id(2)] public long LastDelivery { get; set; }

    /// <summary>Recent final results and updates, newest last.</summary>
    [Id(3)] public List<WindowResult> Closed { get; set; } = [];

    /// <summary>Slices dropped as repeats.</summary>
    [Id(4)] public long DuplicateSlices { get; set; }

    /// <summary>Events refused by the grain (invalid time), not applied.</summary>
    [Id(5)] public long RejectedEvents { get; set; }

    /// <summary>
    /// For a pipeline that feeds others: what the last delivery fired (finals, updates, retractions), handed out again
    /// when that delivery comes again after a crash, so the pipelines it feeds still receive it.
    /// </summary>
    [Id(6)] public List<WindowResult>? LastFired { get; set; }

    /// <summary>For a key of a chained pipeline: its stage's state (instead of <see cref="Engine"/>).</summary>
    [Id(7)] public Orleans.Pipeline.Windowing.Chaining.ChainedStageState? Chained { get; set; }

    /// <summary>For a key of a chained pipeline: upstream results taken.</summary>
    [Id(8)] public long Contributions { get; set; }
}
