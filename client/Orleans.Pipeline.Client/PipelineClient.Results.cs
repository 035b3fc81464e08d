using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Orleans.Runtime;
using Orleans.Streams;

namespace Orleans.Pipeline.Client;

/// <summary>Reading results: a key's windows, the recent-results log, live subscriptions.</summary>
public sealed partial class PipelineClient
{
    /// <summary>A key's held and recently closed windows.</summary>
    public Task<KeyWindows> QueryAsync(string pipeline, string key) =>
        _cluster.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(pipeline, key)).GetWindowsAsync();

    /// <summary>
    /// Up to <paramref name="max"/> key result batches after position <paramref name="after"/> from the pipeline's
    /// recent-results log (in embedded mode, one silo: every result; in cluster mode, the log of the silo serving
    /// the call). With nothing after that position yet, waits up to <paramref name="wait"/> for new results.
    /// </summary>
    public async Task<ResultLogPage> ReadRecentResultsAsync(string pipeline, long after, int max, TimeSpan wait)
    {
        await FindAsync(pipeline);
        return await _cluster.GetGrain<IResultLogGrain>(pipeline).ReadAsync(after, max, wait);
    }

    /// <summary>
    /// Calls <paramref name="onBatch"/> for every key's result batch the pipeline emits from the moment this returns,
    /// until the returned handle is disposed. Delivery of the next batch waits for the handler. When the feed skipped
    /// results (this subscriber, or the feed, fell further behind than the silo's recent-results log reaches), the
    /// subscription first reads what it missed back from that log; what the log no longer holds is reported to
    /// <paramref name="onMissed"/> and counted in <see cref="ResultSubscription.MissedBatches"/>, never skipped without
    /// a word (the keys' windows, <see cref="QueryAsync"/>, and in cluster mode the results table still have them).
    /// </summary>
    public async Task<ResultSubscription> SubscribeAsync(string pipeline, Func<ResultBatch, Task> onBatch, Func<ResultsMissed, Task>? onMissed = null)
    {
        await FindAsync(pipeline);
        var subscription = new ResultSubscription(_cluster.GetGrain<IResultLogGrain>(pipeline), pipeline, onBatch, onMissed);
        var stream = _resultStreams.GetStream<ResultFeed>(StreamId.Create(PipelineNames.ResultsNamespace, pipeline));
        subscription.Handle = await stream.SubscribeAsync((feed, _) => subscription.OnFeedAsync(feed));
        return subscription;
    }

    /// <summary>
    /// Every result batch the pipeline emits from the first <c>MoveNextAsync</c> on, until cancelled. Delivery waits
    /// while the consumer is behind (a bounded buffer of <paramref name="buffer"/> batches). Results the subscription
    /// missed and could not read back end the enumeration with <see cref="ResultsMissedException"/>.
    /// </summary>
    public async IAsyncEnumerable<ResultBatch> ReadResultsAsync(string pipeline, int buffer = 1024, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var channel = Channel.CreateBounded<ResultBatch>(buffer);
        await using var subscription = await SubscribeAsync(pipeline, batch => channel.Writer.WriteAsync(batch, cancellationToken).AsTask(), missed =>
        {
            channel.Writer.TryComplete(new ResultsMissedException(missed));
            return Task.CompletedTask;
        });
        await foreach (var batch in channel.Reader.ReadAllAsync(cancellationToken)) yield return batch;
    }
}
