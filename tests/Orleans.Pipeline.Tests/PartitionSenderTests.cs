using System.Collections.Concurrent;
using Orleans.Pipeline.Client;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// The SDK's partition sender against a fake partition: an item that fails for good fails whoever waits for it (never
/// leaves them waiting), is reported and abandoned, and the sender goes on with the next item under the next sequence.
/// </summary>
public sealed class PartitionSenderTests
{
    /// <summary>Long enough for any of these sends; a sender that left someone waiting fails the test instead of hanging it.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task An_item_the_stream_refuses_fails_its_waiters_is_reported_and_abandoned_and_the_next_item_goes_out()
    {
        var partition = new FakePartition { Send = (batch, _) => batch.Sequence == 1 ? throw new ArgumentException("refused by the stream") : Task.CompletedTask };
        var (sender, producer) = NewSender(partition);

        var first = Publish(sender, events: 3, flush: true);
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => first.WaitAsync(Patience));
        Assert.IsType<ArgumentException>(failure.InnerException);
        Assert.Contains("sequence 1", failure.Message, StringComparison.Ordinal);
        Assert.Contains("after 1 attempt(s)", failure.Message, StringComparison.Ordinal);
        await WaitForSenderAsync(sender);
        Assert.Same(failure, Assert.Single(producer.TakeFailures()));
        Assert.Equal(new[] { 1L }, partition.Abandoned);

        // The sender goes on: the next item is sent under the next sequence (numbers are given when an item is cut).
        await Publish(sender, events: 2, flush: true).WaitAsync(Patience);
        var stored = Assert.Single(partition.Stored);
        Assert.Equal(2, stored.Sequence);
        Assert.Equal(2, stored.Count);
        Assert.Empty(producer.TakeFailures());
    }

    [Fact]
    public async Task A_refused_abandon_does_not_stop_the_sender()
    {
        var partition = new FakePartition
        {
            Send = (batch, _) => batch.Sequence == 1 ? throw new ArgumentException("refused by the stream") : Task.CompletedTask,
            Abandon = _ => throw new ArgumentException("refused by the partition"),
        };
        var (sender, _) = NewSender(partition);

        await Assert.ThrowsAsync<InvalidOperationException>(() => Publish(sender, events: 1, flush: true).WaitAsync(Patience));
        await WaitForSenderAsync(sender);
        await Publish(sender, events: 1, flush: true).WaitAsync(Patience);
        Assert.Equal(2, Assert.Single(partition.Stored).Sequence);
    }

    [Fact]
    public async Task A_refusal_while_waiting_for_the_partition_fails_the_waiters_before_anything_is_sent()
    {
        // One item unapplied at most: the second item first asks the partition, which refuses.
        var partition = new FakePartition { Applied = (_, _) => throw new ArgumentException("unknown producer") };
        var (sender, producer) = NewSender(partition, new PipelineClientOptions { MaxUnappliedBatches = 1, RetryDelay = TimeSpan.FromMilliseconds(1) });

        await Publish(sender, events: 1, flush: true).WaitAsync(Patience);
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => Publish(sender, events: 1, flush: true).WaitAsync(Patience));
        Assert.Contains("before it was sent", failure.Message, StringComparison.Ordinal);
        await WaitForSenderAsync(sender);
        Assert.Single(producer.TakeFailures());
        Assert.Equal(new[] { 1L }, partition.Stored.Select(b => b.Sequence));
        Assert.Equal(new[] { 2L }, partition.Abandoned);
    }

    [Fact]
    public async Task An_item_nobody_waits_for_is_given_up_after_MaxAttempts_reported_and_abandoned()
    {
        var partition = new FakePartition { Send = (_, _) => throw new InvalidOperationException("the queue is gone") };
        var (sender, producer) = NewSender(partition, new PipelineClientOptions { MaxAttempts = 3, RetryDelay = TimeSpan.FromMilliseconds(1), Linger = TimeSpan.FromMilliseconds(1) });

        _ = Publish(sender, events: 4, flush: false);
        await WaitForSenderAsync(sender);
        Assert.Equal(3, partition.Attempts.Count);
        var failure = Assert.Single(producer.TakeFailures());
        Assert.Contains("an item of 4 events (sequence 1) could not be stored after 3 attempt(s): the queue is gone", failure.Message, StringComparison.Ordinal);
        Assert.Equal(new[] { 1L }, partition.Abandoned);
    }

    [Fact]
    public async Task Items_shrink_while_they_apply_slowly_and_grow_back_to_the_maximum_while_they_apply_quickly()
    {
        // The partition takes 10 s per item (a slow fan-out to many new keys), then 0.1 s.
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var slow = true;
        var partition = new FakePartition
        {
            Applied = (_, sequence) =>
            {
                clock.Advance(TimeSpan.FromSeconds(slow ? 10 : 0.1));
                return Task.FromResult(sequence);
            },
        };
        var options = new PipelineClientOptions { MaxBatchSize = 32_768, MaxUnappliedBatches = 1, RetryDelay = TimeSpan.FromMilliseconds(1) };
        var sender = new PartitionSender(new PartitionBuffer("p", 0, ["v"]), partition, new Producer(Guid.NewGuid()), options, clock);
        int Limit()
        {
            lock (sender.Buffer) return sender.Buffer.Limit;
        }

        Assert.Equal(PartitionSender.InitialItemSize, Limit());
        var seen = new List<int>();
        for (var i = 0; i < 6; i++)
        {
            await Publish(sender, events: 1, flush: true).WaitAsync(Patience);
            seen.Add(Limit());
        }

        // The first item has nothing before it to wait for; each later one waits for the one before, which took 10 s.
        Assert.Equal([8_192, 4_096, 2_048, 1_024, 1_024, 1_024], seen);

        slow = false;
        seen.Clear();
        for (var i = 0; i < 7; i++)
        {
            await Publish(sender, events: 1, flush: true).WaitAsync(Patience);
            seen.Add(Limit());
        }

        // Doubled per quick item, never beyond MaxBatchSize.
        Assert.Equal([2_048, 4_096, 8_192, 16_384, 32_768, 32_768, 32_768], seen);
    }

    [Fact]
    public async Task A_full_buffer_at_the_adapted_size_is_cut_at_once_without_lingering()
    {
        var partition = new FakePartition();
        var options = new PipelineClientOptions { MaxBatchSize = 32_768, Linger = TimeSpan.FromHours(1), RetryDelay = TimeSpan.FromMilliseconds(1) };
        var sender = new PartitionSender(new PartitionBuffer("p", 0, ["v"]), partition, new Producer(Guid.NewGuid()), options, TimeProvider.System);
        lock (sender.Buffer) sender.Buffer.Limit = 10;

        _ = Publish(sender, events: 10, flush: false);
        await WaitForSenderAsync(sender);
        Assert.Equal(10, Assert.Single(partition.Stored).Count);
    }

    private static (PartitionSender Sender, Producer Producer) NewSender(FakePartition partition, PipelineClientOptions? options = null)
    {
        var producer = new Producer(Guid.NewGuid());
        options ??= new PipelineClientOptions { RetryDelay = TimeSpan.FromMilliseconds(1) };
        return (new PartitionSender(new PartitionBuffer("p", 0, ["v"]), partition, producer, options, TimeProvider.System), producer);
    }

    /// <summary>Buffers events as a publisher does; with <paramref name="flush"/>, returns what completes when they are stored.</summary>
    private static Task Publish(PartitionSender sender, int events, bool flush)
    {
        var buffer = sender.Buffer;
        lock (buffer)
        {
            for (var i = 0; i < events; i++) buffer.Add($"k{i}", i, [1.0], TimeProvider.System.GetTimestamp());
            var stored = flush ? buffer.Flush() : Task.CompletedTask;
            sender.EnsureRunning();
            return stored;
        }
    }

    /// <summary>Waits until the sender's loop has ended (it ends once the buffer is empty).</summary>
    private static async Task WaitForSenderAsync(PartitionSender sender)
    {
        Task? running;
        lock (sender.Buffer) running = sender.Buffer.Sending;
        if (running is not null) await running.WaitAsync(Patience);
    }

    private sealed class FakePartition : IPartitionTarget
    {
        public Func<PartitionBatch, int, Task> Send { get; init; } = (_, _) => Task.CompletedTask;

        public Func<Guid, long, Task<long>> Applied { get; init; } = (_, sequence) => Task.FromResult(sequence);

        public Func<long, Task> Abandon { get; init; } = _ => Task.CompletedTask;

        public ConcurrentQueue<PartitionBatch> Attempts { get; } = new();

        public ConcurrentQueue<PartitionBatch> Stored { get; } = new();

        public ConcurrentQueue<long> Abandoned { get; } = new();

        public async Task SendAsync(PartitionBatch batch)
        {
            Attempts.Enqueue(batch);
            await Send(batch, Attempts.Count);
            Stored.Enqueue(batch);
        }

        public Task<long> WaitForAppliedAsync(Guid producer, long sequence, TimeSpan timeout) => Applied(producer, sequence);

        public Task AbandonAsync(Guid producer, long sequence)
        {
            Abandoned.Enqueue(sequence);
            return Abandon(sequence);
        }
    }
}
