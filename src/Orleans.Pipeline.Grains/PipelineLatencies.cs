namespace Orleans.Pipeline.Grains;

/// <summary>
/// Latencies this silo observed, as bounded samples (the most recent <see cref="Capacity"/> of each kind): from an
/// item's send to its key's apply, and from a window's end (wall clock) to its final result. For the load benchmark
/// and diagnostics; meaningful when event time follows the wall clock.
/// </summary>
public sealed class PipelineLatencies
{
    /// <summary>Samples kept per kind.</summary>
    public const int Capacity = 200_000;

    private readonly Samples _applied = new();
    private readonly Samples _results = new();

    /// <summary>Milliseconds from an item's send to its key's apply.</summary>
    public void RecordApplied(long ms) => _applied.Add(ms);

    /// <summary>Milliseconds from a window's end to its final result.</summary>
    public void RecordResult(long ms) => _results.Add(ms);

    /// <summary>(p50, p99, samples) of publish-to-applied and of window-end-to-result.</summary>
    public ((double P50, double P99, long Count) Applied, (double P50, double P99, long Count) Results) Snapshot() =>
        (_applied.Percentiles(), _results.Percentiles());

    /// <summary>Forgets every sample.</summary>
    public void Reset()
    {
        _applied.Reset();
        _results.Reset();
    }

    private sealed class Samples
    {
        private readonly long[] _values = new long[Capacity];
        private long _count;

        public void Add(long ms) => _values[(Interlocked.Increment(ref _count) - 1) % Capacity] = Math.Max(0, ms);

        public void Reset() => Interlocked.Exchange(ref _count, 0);

        public (double P50, double P99, long Count) Percentiles()
        {
            var count = Interlocked.Read(ref _count);
            if (count == 0) return (double.NaN, double.NaN, 0);
            var sorted = _values.AsSpan(0, (int)Math.Min(count, Capacity)).ToArray();
            Array.Sort(sorted);
            return (sorted[(int)(0.50 * (sorted.Length - 1))], sorted[(int)(0.99 * (sorted.Length - 1))], count);
        }
    }
}
