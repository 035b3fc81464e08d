namespace Orleans.Pipeline.Client;

/// <summary>Results a subscription missed: positions <paramref name="From"/> to <paramref name="To"/> of a silo's feed of the pipeline.</summary>
/// <param name="Pipeline">The pipeline.</param>
/// <param name="Origin">The silo whose feed skipped them.</param>
/// <param name="From">First missed position.</param>
/// <param name="To">Last missed position.</param>
public sealed record ResultsMissed(string Pipeline, string Origin, long From, long To)
{
    /// <summary>Key result batches missed.</summary>
    public long Count => To - From + 1;
}

/// <summary>A subscription missed results it could not read back; the keys' windows (query them) still have them.</summary>
public sealed class ResultsMissedException(ResultsMissed missed) : Exception(
    $"the subscription to pipeline '{missed.Pipeline}' missed {missed.Count} key result batches (positions {missed.From}-{missed.To} of silo {missed.Origin}): " +
    "it fell further behind than the silo's recent-results log reaches; query the keys for their windows")
{
    /// <summary>What was missed.</summary>
    public ResultsMissed Missed { get; } = missed;
}

/// <summary>
/// A live subscription to a pipeline's results (<see cref="PipelineClient.SubscribeAsync"/>): follows each silo's
/// feed positions, reads skipped positions back from that silo's recent-results log, and reports what it could not.
/// Dispose to unsubscribe.
/// </summary>
public sealed class ResultSubscription : IAsyncDisposable
{
    private readonly IResultLogGrain _log;
    private readonly string _pipeline;
    private readonly Func<ResultBatch, Task> _onBatch;
    private readonly Func<ResultsMissed, Task>? _onMissed;
    private readonly Dictionary<string, long> _delivered = new(StringComparer.Ordinal);
    private long _missed;
    private long _recovered;

    internal ResultSubscription(IResultLogGrain log, string pipeline, Func<ResultBatch, Task> onBatch, Func<ResultsMissed, Task>? onMissed)
    {
        _log = log;
        _pipeline = pipeline;
        _onBatch = onBatch;
        _onMissed = onMissed;
    }

    internal Orleans.Streams.StreamSubscriptionHandle<ResultFeed>? Handle { get; set; }

    /// <summary>Key result batches this subscription missed and could not read back.</summary>
    public long MissedBatches => Interlocked.Read(ref _missed);

    /// <summary>Key result batches the feed skipped that this subscription read back from a recent-results log.</summary>
    public long RecoveredBatches => Interlocked.Read(ref _recovered);

    internal async Task OnFeedAsync(ResultFeed feed)
    {
        var last = feed.FirstPosition + feed.Batches.Length - 1;
        if (_delivered.TryGetValue(feed.Origin, out var delivered))
        {
            if (last <= delivered) return; // already delivered (a repeated message)
            if (feed.FirstPosition > delivered + 1) await CatchUpAsync(feed.Origin, delivered, feed.FirstPosition - 1);
        }
        else
        {
            delivered = feed.FirstPosition - 1;
        }

        for (var i = (int)Math.Max(0, delivered + 1 - feed.FirstPosition); i < feed.Batches.Length; i++) await _onBatch(feed.Batches[i]);
        _delivered[feed.Origin] = last;
    }

    /// <summary>Positions after <paramref name="after"/> up to <paramref name="to"/> from the origin's log, as far as it still holds them.</summary>
    private async Task CatchUpAsync(string origin, long after, long to)
    {
        while (after < to)
        {
            ResultLogPage? page = null;
            try
            {
                page = await _log.ReadAsync(after, (int)Math.Min(to - after, 4_096), TimeSpan.Zero);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The log is out of reach: what it held counts as missed.
            }

            if (page is null || page.Origin != origin || page.Batches.Length == 0)
            {
                await MissedAsync(origin, after + 1, to);
                return;
            }

            if (page.FirstPosition > after + 1) await MissedAsync(origin, after + 1, page.FirstPosition - 1);
            var take = (int)Math.Min(page.Batches.Length, to - page.FirstPosition + 1);
            for (var i = 0; i < take; i++) await _onBatch(page.Batches[i]);
            Interlocked.Add(ref _recovered, take);
            after = page.FirstPosition + take - 1;
        }
    }

    private async Task MissedAsync(string origin, long from, long to)
    {
        var missed = new ResultsMissed(_pipeline, origin, from, to);
        Interlocked.Add(ref _missed, missed.Count);
        if (_onMissed is not null) await _onMissed(missed);
    }

    public async ValueTask DisposeAsync()
    {
        if (Handle is { } handle) await handle.UnsubscribeAsync();
    }
}
