namespace Orleans.Pipeline.Windowing;

/// <summary>The shape of the windows a pipeline assigns events to.</summary>
public enum WindowKind
{
    /// <summary>Fixed-size, non-overlapping windows <c>[k·size + offset, (k+1)·size + offset)</c>.</summary>
    Tumbling = 0,

    /// <summary>Fixed-size windows that start every <c>slide</c>; an event belongs to every window that covers it.</summary>
    Hopping = 1,

    /// <summary>Windows of activity separated by at least the inactivity gap; they merge when an event bridges two of them.</summary>
    Session = 2,
}

/// <summary>
/// A window definition. All times are milliseconds; fixed windows are aligned to the Unix epoch plus <see cref="OffsetMs"/>.
/// </summary>
/// <param name="Kind">Tumbling, hopping or session.</param>
/// <param name="SizeMs">Window length (tumbling, hopping). Ignored for sessions.</param>
/// <param name="SlideMs">Distance between window starts (hopping); equal to <see cref="SizeMs"/> for tumbling.</param>
/// <param name="GapMs">Inactivity gap (session): two events at most this far apart belong to the same session.</param>
/// <param name="OffsetMs">Shift of the epoch alignment, in <c>[0, slide)</c>, e.g. to align daily windows to a time zone.</param>
[GenerateSerializer, Immutable, Alias("pipeline.window-spec")]
public sealed record WindowSpec(
    [property: Id(0)] WindowKind Kind,
    [property: Id(1)] long SizeMs,
    [property: Id(2)] long SlideMs,
    [property: Id(3)] long GapMs,
    [property: Id(4)] long OffsetMs)
{
    /// <summary>Tumbling windows of <paramref name="sizeMs"/>.</summary>
    public static WindowSpec Tumbling(long sizeMs, long offsetMs = 0) => new(WindowKind.Tumbling, sizeMs, sizeMs, 0, offsetMs);

    /// <summary>Hopping windows of <paramref name="sizeMs"/> starting every <paramref name="slideMs"/>.</summary>
    public static WindowSpec Hopping(long sizeMs, long slideMs, long offsetMs = 0) => new(WindowKind.Hopping, sizeMs, slideMs, 0, offsetMs);

    /// <summary>Session windows closed by <paramref name="gapMs"/> of inactivity.</summary>
    public static WindowSpec Session(long gapMs) => new(WindowKind.Session, 0, 0, gapMs, 0);

    /// <summary>Returns the problems with this definition, or nothing when it is valid.</summary>
    public IEnumerable<string> Validate()
    {
        switch (Kind)
        {
            case WindowKind.Tumbling:
            case WindowKind.Hopping:
                if (SizeMs <= 0) yield return "window size must be > 0";
                if (Kind == WindowKind.Hopping && SlideMs <= 0) yield return "window slide must be > 0";
                if (Kind == WindowKind.Hopping && SlideMs > SizeMs) yield return $"window slide ({SlideMs} ms) must not exceed the window size ({SizeMs} ms)";
                if (Kind == WindowKind.Hopping && SlideMs > 0 && SizeMs / SlideMs > MaxWindowsPerEvent)
                    yield return $"window size / slide must be at most {MaxWindowsPerEvent} (each event would belong to {SizeMs / SlideMs} windows)";
                if (Kind == WindowKind.Tumbling && SlideMs != SizeMs) yield return "a tumbling window's slide equals its size";
                if (OffsetMs < 0 || (Step > 0 && OffsetMs >= Step)) yield return $"window offset must be in [0, {Math.Max(Step, 1)}) ms";
                break;
            case WindowKind.Session:
                if (GapMs <= 0) yield return "session gap must be > 0";
                break;
            default:
                yield return $"unknown window kind {(int)Kind}";
                break;
        }
    }

    /// <summary>The most windows a single event may belong to (hopping size / slide).</summary>
    public const int MaxWindowsPerEvent = 1024;

    internal long Step => Kind == WindowKind.Tumbling ? SizeMs : SlideMs;

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        WindowKind.Tumbling => $"tumbling({SizeMs} ms{(OffsetMs != 0 ? $", offset {OffsetMs} ms" : "")})",
        WindowKind.Hopping => $"hopping({SizeMs} ms every {SlideMs} ms{(OffsetMs != 0 ? $", offset {OffsetMs} ms" : "")})",
        _ => $"session(gap {GapMs} ms)",
    };
}
