using Orleans.Placement;

namespace Orleans.Pipeline.Grains;

/// <summary>
/// Serves the recent-results log of the silo it is activated on (<see cref="LiveResults"/>); the page names that
/// silo, so a reader can tell whether it is the log it wanted.
/// </summary>
[PreferLocalPlacement]
internal sealed class ResultLogGrain(LiveResults live) : Grain, IResultLogGrain
{
    /// <summary>Batches per page at most.</summary>
    public const int MaxPage = 4_096;

    /// <summary>Longest wait for new results per call.</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(5);

    public async Task<ResultLogPage> ReadAsync(long after, int max, TimeSpan wait)
    {
        var pipeline = this.GetPrimaryKeyString();
        max = Math.Clamp(max, 1, MaxPage);
        var page = live.Read(pipeline, after, max);
        if (page.Batches.Length > 0 || wait <= TimeSpan.Zero) return page;
        await live.WaitAsync(pipeline, after, wait < MaxWait ? wait : MaxWait);
        return live.Read(pipeline, after, max);
    }
}
