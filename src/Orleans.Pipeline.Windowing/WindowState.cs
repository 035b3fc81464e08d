namespace Orleans.Pipeline.Windowing;

/// <summary>
/// The persisted state of one key's engine: clock, counters and the windows it still holds (open, or fired and
/// within the allowed lateness). Owned by <see cref="WindowEngine"/>; persist it as a whole and hand it back to a new
/// engine to continue exactly where it stopped.
/// </summary>
[GenerateSerializer, Alias("pipeline.window-state")]
public sealed class WindowState
{
    [Id(0)] internal string Layout = "";
    [Id(1)] internal long Watermark = long.MinValue;
    [Id(2)] internal long MaxEventTime = long.MinValue;
    [Id(3)] internal long LastArrival = long.MinValue;
    [Id(4)] internal long LastEarlyFiring = long.MinValue;
    [Id(5)] internal long AppliedEvents;
    [Id(6)] internal long LateEvents;
    [Id(7)] internal List<WindowSlot> Windows = [];

    /// <summary>The watermark: no more events before it are expected. <see cref="long.MinValue"/> before the first event.</summary>
    public long CurrentWatermark => Watermark;

    /// <summary>The highest event time applied.</summary>
    public long HighestEventTime => MaxEventTime;

    /// <summary>Events applied to at least one window.</summary>
    public long AppliedEventCount => AppliedEvents;

    /// <summary>Events that arrived after all their windows had expired, not applied.</summary>
    public long LateEventCount => LateEvents;

    /// <summary>Windows held: open ones and fired ones still within the allowed lateness.</summary>
    public int WindowCount => Windows.Count;
}

[Flags]
internal enum WindowSlotFlags : byte
{
    None = 0,

    /// <summary>A final result was emitted: later events produce updates.</summary>
    Fired = 1,

    /// <summary>Changed since its last emission (drives early firing).</summary>
    Dirty = 2,
}

/// <summary>One window and its aggregation state.</summary>
[GenerateSerializer, Alias("pipeline.window-slot")]
internal sealed class WindowSlot
{
    [Id(0)] internal long Start;
    [Id(1)] internal long End;
    [Id(2)] internal long Count;
    [Id(3)] internal int Revision;
    [Id(4)] internal WindowSlotFlags Flags;
    [Id(5)] internal double[] Slots = [];
    [Id(6)] internal object?[]? Objects;

    internal bool Fired => (Flags & WindowSlotFlags.Fired) != 0;
}
