using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Grains;

/// <summary>
/// A key's recent closed windows (finals and updates), newest last, kept as a handful of arrays rather than one
/// record and one value array per window. A key fires a window every window length and keeps the last
/// <see cref="PipelineDefinition.ClosedWindowsKept"/> of them: as records, each result would live exactly long enough to
/// reach the oldest generation of the heap and die there, tens of objects per key, which at 10^5 active keys made
/// collections the largest cost of the silo. Here a new result overwrites slots of arrays the key already has, and
/// the stored state carries the same columns. Results are made again only when someone asks (a query).
/// </summary>
[GenerateSerializer, Alias("pipeline.closed-windows")]
internal sealed class ClosedWindows
{
    /// <summary>Windows held.</summary>
    [Id(0)] public int Count { get; set; }

    /// <summary>Values per window (the pipeline's outputs when the windows were kept).</summary>
    [Id(1)] public int Width { get; set; }

    [Id(2)] public long[] Starts { get; set; } = [];
    [Id(3)] public long[] Ends { get; set; } = [];
    [Id(4)] public int[] Revisions { get; set; } = [];
    [Id(5)] public byte[] Kinds { get; set; } = [];
    [Id(6)] public long[] EventCounts { get; set; } = [];
    [Id(7)] public long[] Watermarks { get; set; } = [];

    /// <summary><see cref="Width"/> values per window, window after window.</summary>
    [Id(8)] public double[] Values { get; set; } = [];

    /// <summary>Per window, its values' labels (top-N of a chained pipeline); null while no window has any.</summary>
    [Id(9)] public string?[]?[]? Labels { get; set; }

    /// <summary>The windows a key kept as a list (states stored before this type existed).</summary>
    public static ClosedWindows From(IEnumerable<WindowResult> results)
    {
        var closed = new ClosedWindows();
        foreach (var result in results) closed.Add(result);
        return closed;
    }

    /// <summary>
    /// Takes one emission: an earlier emission of the same window goes; a final or update is kept as the newest, a
    /// retraction leaves the window out. Partial results are not closed windows and change nothing.
    /// </summary>
    public void Remember(WindowResult result)
    {
        if (result.Kind is ResultKind.Partial) return;
        for (var i = Count - 1; i >= 0; i--)
        {
            if (Starts[i] == result.Start && Ends[i] == result.End) RemoveAt(i);
        }

        if (result.Kind is ResultKind.Final or ResultKind.Update) Add(result);
    }

    /// <summary>Forgets the oldest windows beyond <paramref name="keep"/>, and room no longer needed.</summary>
    public void Trim(int keep)
    {
        if (Count > keep) RemoveOldest(Count - keep);
        // A step that fired many windows grew the arrays; a key keeps one spare slot in the long run.
        if (Starts.Length > Count + 4 && Starts.Length > 2 * Count) Resize(Count + 1);
    }

    /// <summary>The windows as results, oldest first.</summary>
    public WindowResult[] ToArray()
    {
        var results = new WindowResult[Count];
        for (var i = 0; i < Count; i++)
        {
            results[i] = new WindowResult(Starts[i], Ends[i], Revisions[i], (ResultKind)Kinds[i], EventCounts[i],
                Values.AsSpan(i * Width, Width).ToArray(), Watermarks[i], Labels?[i]);
        }

        return results;
    }

    private void Add(WindowResult result)
    {
        if (Count > 0 && result.Values.Length != Width) Relayout(result.Values.Length);
        Width = result.Values.Length;
        if (Count == Starts.Length) Resize(Math.Max(4, Count * 2));
        var i = Count++;
        Starts[i] = result.Start;
        Ends[i] = result.End;
        Revisions[i] = result.Revision;
        Kinds[i] = (byte)result.Kind;
        EventCounts[i] = result.EventCount;
        Watermarks[i] = result.Watermark;
        result.Values.AsSpan().CopyTo(Values.AsSpan(i * Width, Width));
        if (result.Labels is not null) (Labels ??= new string?[]?[Starts.Length])[i] = result.Labels;
        else if (Labels is not null) Labels[i] = null;
    }

    private void RemoveAt(int index)
    {
        var after = Count - index - 1;
        if (after > 0)
        {
            Array.Copy(Starts, index + 1, Starts, index, after);
            Array.Copy(Ends, index + 1, Ends, index, after);
            Array.Copy(Revisions, index + 1, Revisions, index, after);
            Array.Copy(Kinds, index + 1, Kinds, index, after);
            Array.Copy(EventCounts, index + 1, EventCounts, index, after);
            Array.Copy(Watermarks, index + 1, Watermarks, index, after);
            Array.Copy(Values, (index + 1) * Width, Values, index * Width, after * Width);
            if (Labels is not null) Array.Copy(Labels, index + 1, Labels, index, after);
        }

        Count--;
        if (Labels is not null) Labels[Count] = null;
    }

    private void RemoveOldest(int n)
    {
        var left = Count - n;
        Array.Copy(Starts, n, Starts, 0, left);
        Array.Copy(Ends, n, Ends, 0, left);
        Array.Copy(Revisions, n, Revisions, 0, left);
        Array.Copy(Kinds, n, Kinds, 0, left);
        Array.Copy(EventCounts, n, EventCounts, 0, left);
        Array.Copy(Watermarks, n, Watermarks, 0, left);
        Array.Copy(Values, n * Width, Values, 0, left * Width);
        if (Labels is not null)
        {
            Array.Copy(Labels, n, Labels, 0, left);
            Array.Clear(Labels, left, Count - left);
            if (Array.TrueForAll(Labels, l => l is null)) Labels = null;
        }

        Count = left;
    }

    private void Resize(int capacity)
    {
        Starts = Grown(Starts, capacity);
        Ends = Grown(Ends, capacity);
        Revisions = Grown(Revisions, capacity);
        Kinds = Grown(Kinds, capacity);
        EventCounts = Grown(EventCounts, capacity);
        Watermarks = Grown(Watermarks, capacity);
        Values = Grown(Values, capacity * Width, Count * Width);
        if (Labels is not null) Labels = Grown(Labels, capacity);
    }

    private T[] Grown<T>(T[] array, int capacity) => Grown(array, capacity, Count);

    private static T[] Grown<T>(T[] array, int capacity, int used)
    {
        var grown = new T[capacity];
        Array.Copy(array, grown, Math.Min(used, capacity));
        return grown;
    }

    /// <summary>
    /// The pipeline's outputs changed (a redeployed definition): the windows kept so far keep their first values,
    /// NaN where they have none.
    /// </summary>
    private void Relayout(int width)
    {
        var values = new double[Starts.Length * width];
        values.AsSpan().Fill(double.NaN);
        for (var i = 0; i < Count; i++)
            Values.AsSpan(i * Width, Math.Min(Width, width)).CopyTo(values.AsSpan(i * width));
        Values = values;
        Width = width;
    }
}
