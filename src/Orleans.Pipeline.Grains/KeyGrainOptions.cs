namespace Orleans.Pipeline.Grains;

/// <summary>How key grains persist their state; set by the hosting layer per deployment mode.</summary>
public sealed class KeyGrainOptions
{
    /// <summary>
    /// Zero: state is written after every batch, before the batch is acknowledged (write-through, nothing applied
    /// is ever lost). Positive: state is written at most this often, and on deactivation and graceful shutdown;
    /// a crash loses up to this much applied work. Embedded mode uses a positive interval: its memory streams lose
    /// in-flight events on a crash anyway, and one SQLite write per batch would cap throughput.
    /// </summary>
    public TimeSpan StateWriteInterval { get; set; } = TimeSpan.Zero;
}
