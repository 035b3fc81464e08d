namespace Orleans.Pipeline.Grains;

/// <summary>
/// The clock of the pipeline's own logic (gap timeouts, idle timeouts, processing time, arrival times), a keyed
/// <see cref="TimeProvider"/>: by default the silo's, and a test can replace it alone (a fake or skewed clock)
/// without moving Orleans' own clocks (membership, messaging, grain timers).
/// </summary>
public static class PipelineTime
{
    /// <summary>The service key.</summary>
    public const string Key = "Orleans.Pipeline";
}
