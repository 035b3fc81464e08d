using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Grains;

/// <summary>What a key grain persists: the engine's state, the dedupe marks and the recent closed windows, in one write.</summary>
[GenerateSerializer, Alias("pipeline.key-grain-state")]
internal sealed class KeyGrainState
{
    /// <summary>The windowing engine's state; null before the first event.</summary>
    [Id(0)] public WindowState? Engine { get; set; }

    /// <summary>Highest batch sequence applied per producer; a batch at or below it is a repeat.</summary>
    [Id(1)] public Dictionary<Guid, long> LastSequence { get; set; } = [];

    /// <summary>Recent final results and updates, newest last.</summary>
    [Id(2)] public List<WindowResult> Closed { get; set; } = [];

    /// <summary>Batches dropped as repeats.</summary>
    [Id(3)] public long DuplicateBatches { get; set; }

    /// <summary>Events refused by the grain (invalid time), not applied.</summary>
    [Id(4)] public long RejectedEvents { get; set; }

    /// <summary>Producers in the order they last sent, oldest first, to bound <see cref="LastSequence"/>.</summary>
    [Id(5)] public List<Guid> ProducerOrder { get; set; } = [];
}
