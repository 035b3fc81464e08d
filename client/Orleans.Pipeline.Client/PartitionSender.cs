using System.Data.Common;
using System.Diagnostics;
using Orleans.Runtime;

namespace Orleans.Pipeline.Client;

/// <summary>
/// The sender of one partition of a pipeline: cuts an item from the partition's <see cref="PartitionBuffer"/> when
/// it is full, has lingered long enough or is flushed; waits until the partition has applied all but
/// <see cref="PipelineClientOptions.MaxUnappliedBatches"/> of this producer's earlier items (backpressure); sends
/// it, retrying with the same sequence; then settles whoever waited for those events. One item at a time; the loop
/// runs while the buffer has events and is started again by the next publisher.
/// </summary>
/// <remarks>
/// Every item cut is settled: stored, its waiters complete; failed for good (an <see cref="ArgumentException"/> from
/// the stream or the partition, or <see cref="PipelineClientOptions.MaxAttempts"/> spent on an item nobody waits for),
/// its waiters fail with the error, <see cref="PipelineClient.FlushAsync"/> reports it, and the partition is told the
/// sequence was given up. Nothing on that path throws, so the loop goes on with the next item.
/// </remarks>
internal sealed class PartitionSender
{
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan AppliedPoll = TimeSpan.FromSeconds(5);

    /// <summary>Items start at this size at most, and grow from it toward <see cref="PipelineClientOptions.MaxBatchSize"/>.</summary>
    internal const int InitialItemSize = 8_192;

    /// <summary>Items never shrink below this size (or <see cref="PipelineClientOptions.MaxBatchSize"/>, if smaller).</summary>
    internal const int MinItemSize = 1_024;

    /// <summary>A wait for the partition longer than this (its items are slow to apply) halves the item size.</summary>
    internal static readonly TimeSpan SlowItem = TimeSpan.FromSeconds(8);

    /// <summary>A wait for the partition shorter than this doubles the item size (up to the maximum).</summary>
    internal static readonly TimeSpan FastItem = TimeSpan.FromSeconds(2);

    private readonly PartitionBuffer buffer;
    private readonly IPartitionTarget target;
    private readonly Producer producer;
    private readonly PipelineClientOptions options;
    private readonly TimeProvider time;

    public PartitionSender(PartitionBuffer buffer, IPartitionTarget target, Producer producer, PipelineClientOptions options, TimeProvider time)
    {
        this.buffer = buffer;
        this.target = target;
        this.producer = producer;
        this.options = options;
        this.time = time;
        lock (buffer) buffer.Limit = Math.Min(options.MaxBatchSize, InitialItemSize);
    }

    /// <summary>Attempts at the item being sent (the loop sends one item at a time).</summary>
    private int _attempts;

    public PartitionBuffer Buffer => buffer;

    /// <summary>Starts the loop if none runs. Call under the buffer's lock, after adding events or flushing.</summary>
    public void EnsureRunning()
    {
        if (buffer.Sending is not null) return;
        buffer.Sending = Task.Run(RunAsync);
    }

    /// <summary>Waits until the partition has applied every item of this producer up to <paramref name="sequence"/>.</summary>
    public async Task WaitForAppliedAsync(long sequence)
    {
        if (buffer.Applied >= sequence) return;
        producer.Waited();
        var delay = options.RetryDelay;
        while (buffer.Applied < sequence)
        {
            try
            {
                buffer.Applied = Math.Max(buffer.Applied, await target.WaitForAppliedAsync(producer.Id, sequence, AppliedPoll));
                delay = options.RetryDelay;
            }
            catch (Exception e) when (e is not ArgumentException)
            {
                // The partition's silo is moving or busy: ask again.
                await Task.Delay(delay, time);
                delay = Backoff(delay);
            }
        }
    }

    private async Task RunAsync()
    {
        try
        {
            await LoopAsync();
        }
        catch (Exception e)
        {
            // SendAsync settles every item it is given without throwing; this is the guard for anything else, so that
            // neither the buffered events' waiters nor publishers waiting for room wait forever, and the next
            // publisher starts a new loop.
            lock (buffer)
            {
                var failure = new InvalidOperationException($"pipeline '{buffer.Pipeline}', partition {buffer.Partition}: the sender stopped; {buffer.Count} buffered events were dropped: {e.Message}", e);
                producer.Failed(failure);
                buffer.Discard(failure);
                buffer.Sending = null;
            }
        }
    }

    private async Task LoopAsync()
    {
        while (true)
        {
            PartitionBatch? batch = null;
            TaskCompletionSource? waiters = null;
            ActivityLink[]? publishers = null;
            TimeSpan wait;
            lock (buffer)
            {
                if (buffer.Count == 0)
                {
                    buffer.Sending = null;
                    return;
                }

                wait = buffer.Count >= buffer.Limit || buffer.FlushRequested ? TimeSpan.Zero : options.Linger - time.GetElapsedTime(buffer.FirstAddedAt);
                // The sequence is assigned by the cut, under the buffer's lock.
                if (wait <= TimeSpan.Zero)
                {
                    publishers = buffer.TakePublishers();
                    var nowMs = time.GetUtcNow().ToUnixTimeMilliseconds();
                    (batch, waiters) = buffer.Cut(producer.Id, nowMs, producer.OpenFrom(), nowMs - (long)time.GetElapsedTime(buffer.FirstAddedAt).TotalMilliseconds);
                }
            }

            if (batch is null)
            {
                await buffer.WaitForFullAsync(wait, time);
                continue;
            }

            await SendAsync(batch, waiters, publishers);
        }
    }

    /// <summary>
    /// Sends one item and settles its waiters, never throwing: stored, they complete; failed for good, the failure is
    /// recorded for <see cref="PipelineClient.FlushAsync"/> (before the waiters fail, so that a flush that saw them
    /// fail also reports it), they fail with it, and the partition is told this producer gave the sequence up.
    /// </summary>
    private async Task SendAsync(PartitionBatch batch, TaskCompletionSource? waiters, ActivityLink[]? publishers)
    {
        _attempts = 0;
        using var activity = PipelineTracing.Source.StartActivity("pipeline.send", ActivityKind.Producer, default(ActivityContext), links: publishers);
        if (activity is not null)
        {
            activity.SetTag("pipeline", buffer.Pipeline);
            activity.SetTag("pipeline.partition", batch.Partition);
            activity.SetTag("pipeline.sequence", batch.Sequence);
            activity.SetTag("pipeline.events", batch.Count);
            activity.SetTag("pipeline.keys", batch.Keys.Length);
            batch = batch with { TraceParent = activity.Id };
        }

        Exception failure;
        try
        {
            var earlier = batch.Sequence - options.MaxUnappliedBatches;
            var waitFrom = buffer.Applied < earlier ? time.GetTimestamp() : (long?)null;
            await WaitForAppliedAsync(earlier);
            if (waitFrom is { } from) Adapt(time.GetElapsedTime(from));
            // Someone waits for exactly this item (a flush, a request): keep trying whatever the error, short of an
            // ArgumentException, which no retry changes.
            await DeliverAsync(batch, persistent: waiters is not null);
            waiters?.TrySetResult();
            return;
        }
        catch (Exception e)
        {
            var tried = _attempts == 0 ? "before it was sent" : $"after {_attempts} attempt(s)";
            failure = new InvalidOperationException(
                $"pipeline '{buffer.Pipeline}', partition {buffer.Partition}: an item of {batch.Count} events (sequence {batch.Sequence}) could not be stored {tried}: {e.Message}", e);
        }

        producer.Failed(failure);
        waiters?.TrySetException(failure);
        await AbandonAsync(batch.Sequence);
    }

    /// <summary>
    /// Sends one item, retrying with the same sequence: errors that mean the cluster is busy or briefly unreachable
    /// are retried until the item is stored; others up to <see cref="PipelineClientOptions.MaxAttempts"/> times (or
    /// without end when <paramref name="persistent"/>). An <see cref="ArgumentException"/> is not retried.
    /// </summary>
    private async Task DeliverAsync(PartitionBatch batch, bool persistent)
    {
        var delay = options.RetryDelay;
        while (true)
        {
            _attempts++;
            try
            {
                await target.SendAsync(batch);
                return;
            }
            catch (Exception e) when (e is not ArgumentException && (persistent || IsBusy(e) || _attempts < options.MaxAttempts))
            {
                if (IsBusy(e)) producer.Waited();
                await Task.Delay(delay, time);
                delay = Backoff(delay);
            }
        }
    }

    /// <summary>
    /// Tells the partition that this producer gave up an item, so that its later items do not wait for it (the gap
    /// timeout would otherwise hold them); if the item was stored after all, the partition still applies it once.
    /// Never throws: past the attempts, or when the partition refuses, its gap timeout moves on instead.
    /// </summary>
    private async Task AbandonAsync(long sequence)
    {
        var delay = options.RetryDelay;
        for (var attempt = 1; attempt <= options.MaxAttempts; attempt++)
        {
            try
            {
                await target.AbandonAsync(producer.Id, sequence);
                return;
            }
            catch (ArgumentException)
            {
                return;
            }
            catch (Exception)
            {
                // Unreachable for now: try again.
                await Task.Delay(delay, time);
                delay = Backoff(delay);
            }
        }
    }

    /// <summary>
    /// The item size follows how long the sender had to wait for the partition to apply its earlier items (while it is
    /// behind, about one item's apply time: the partition applies one item at a time, calling its keys in parallel).
    /// With many keys per partition (10^5 and more, each new key an activation) a large item can take longer than a
    /// grain call may; with fewer, larger items give each key more events per call. Halved after a slow wait, doubled
    /// after a quick one, between a floor and <see cref="PipelineClientOptions.MaxBatchSize"/>. Only waits count: a
    /// sender that never waits has a cluster that keeps up, and an idle spell between bursts says nothing.
    /// </summary>
    private void Adapt(TimeSpan elapsed)
    {
        lock (buffer)
        {
            var floor = Math.Min(options.MaxBatchSize, MinItemSize);
            if (elapsed > SlowItem) buffer.Limit = Math.Max(floor, buffer.Limit / 2);
            else if (elapsed < FastItem) buffer.Limit = (int)Math.Min(options.MaxBatchSize, (long)buffer.Limit * 2);
        }
    }

    private static TimeSpan Backoff(TimeSpan delay) => TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRetryDelay.Ticks));

    /// <summary>Whether an error means "busy or briefly unreachable, try again" rather than "this item cannot be stored".</summary>
    internal static bool IsBusy(Exception e) => e switch
    {
        TimeoutException or OrleansMessageRejectionException or SiloUnavailableException => true,
        DbException db => db.IsTransient,
        AggregateException { InnerExceptions.Count: 1 } a => IsBusy(a.InnerExceptions[0]),
        _ => e.InnerException is { } inner && IsBusy(inner),
    };
}
