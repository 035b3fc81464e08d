using Orleans.Pipeline.Client;
using Orleans.Pipeline.Grains;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Tests.LiveFeed;

/// <summary>
/// The live feed's bookkeeping: the recent-results log numbers every key result batch, holds the latest ones, and
/// reports what the feed skipped; a subscription delivers each position once, reads skipped positions back from the
/// log while it holds them, and reports the rest instead of skipping them silently.
/// </summary>
public sealed class RecentResultsTests
{
    private static ResultBatch Batch(int i) => new("p", $"k{i}", [new WindowResult(i, i + 1, 0, ResultKind.Final, 1, [i], i + 1)], []);

    [Fact]
    public void The_log_numbers_batches_from_one_and_reads_back_what_it_holds()
    {
        var log = new RecentResultsLog(capacity: 4);
        for (var i = 1; i <= 3; i++) Assert.Equal(i, log.Append(Batch(i)));
        var (first, batches, _, _) = log.Read(after: 1, max: 10);
        Assert.Equal(2, first);
        Assert.Equal(["k2", "k3"], batches.Select(b => b.Key));
        Assert.Equal((1, 3), (log.Oldest, log.Latest));
    }

    [Fact]
    public void A_full_log_overwrites_the_oldest_and_a_read_from_before_it_starts_at_the_oldest_held()
    {
        var log = new RecentResultsLog(capacity: 4);
        for (var i = 1; i <= 10; i++) log.Append(Batch(i));
        Assert.Equal((7, 10), (log.Oldest, log.Latest));
        var (first, batches, oldest, latest) = log.Read(after: 2, max: 10);
        Assert.Equal((7, 10), (oldest, latest));
        Assert.Equal(7, first);
        Assert.Equal(["k7", "k8", "k9", "k10"], batches.Select(b => b.Key));
        Assert.Empty(log.Read(after: 10, max: 10).Batches);
    }

    [Fact]
    public void The_feed_sends_each_position_once_and_counts_what_was_overwritten_before_it_was_sent()
    {
        var log = new RecentResultsLog(capacity: 4);
        for (var i = 1; i <= 3; i++) log.Append(Batch(i));
        var (first, batches, skipped) = log.TakeUnsent(max: 2);
        Assert.Equal((1, 2, 0L), (first, batches.Length, skipped));
        log.MarkSent(2);

        for (var i = 4; i <= 12; i++) log.Append(Batch(i)); // 3..8 are overwritten before the feed sends them
        (first, batches, skipped) = log.TakeUnsent(max: 100);
        Assert.Equal(6, skipped);
        Assert.Equal(9, first);
        Assert.Equal(["k9", "k10", "k11", "k12"], batches.Select(b => b.Key));
        log.MarkSent(12);
        Assert.Empty(log.TakeUnsent(max: 100).Batches);
    }

    [Fact]
    public async Task A_reader_waiting_for_new_positions_wakes_when_the_feed_signals_them()
    {
        var log = new RecentResultsLog(capacity: 4);
        var waiting = log.WhenAfter(0);
        Assert.False(waiting.IsCompleted);
        log.Append(Batch(1));
        log.Signal();
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(log.WhenAfter(0).IsCompleted);
        Assert.False(log.WhenAfter(1).IsCompleted);
    }

    [Fact]
    public async Task A_subscription_reads_skipped_positions_back_from_the_log_and_reports_what_the_log_no_longer_holds()
    {
        var log = new FakeLog("silo-a", capacity: 5);
        for (var i = 1; i <= 20; i++) log.Log.Append(Batch(i)); // the log holds 16..20
        var delivered = new List<string>();
        var missed = new List<ResultsMissed>();
        var subscription = new ResultSubscription(log, "p", b => { delivered.Add(b.Key); return Task.CompletedTask; }, m => { missed.Add(m); return Task.CompletedTask; });

        await subscription.OnFeedAsync(new ResultFeed("p", [Batch(1), Batch(2)], "silo-a", 1));
        await subscription.OnFeedAsync(new ResultFeed("p", [Batch(2), Batch(3)], "silo-a", 2)); // 2 again: delivered once
        await subscription.OnFeedAsync(new ResultFeed("p", [Batch(19), Batch(20)], "silo-a", 19)); // 4..18 skipped

        Assert.Equal(["k1", "k2", "k3", "k16", "k17", "k18", "k19", "k20"], delivered);
        Assert.Equal([new ResultsMissed("p", "silo-a", 4, 15)], missed);
        Assert.Equal((12L, 3L), (subscription.MissedBatches, subscription.RecoveredBatches));
    }

    [Fact]
    public async Task A_subscription_follows_each_silo_on_its_own_and_reports_a_gap_it_cannot_read_back_from_another_silo()
    {
        var log = new FakeLog("silo-a", capacity: 100);
        var delivered = new List<string>();
        var missed = new List<ResultsMissed>();
        var subscription = new ResultSubscription(log, "p", b => { delivered.Add(b.Key); return Task.CompletedTask; }, m => { missed.Add(m); return Task.CompletedTask; });

        await subscription.OnFeedAsync(new ResultFeed("p", [Batch(1)], "silo-b", 7));
        await subscription.OnFeedAsync(new ResultFeed("p", [Batch(2)], "silo-a", 1));
        await subscription.OnFeedAsync(new ResultFeed("p", [Batch(3)], "silo-b", 10)); // silo-b's 8 and 9: the log reached is silo-a's

        Assert.Equal(["k1", "k2", "k3"], delivered);
        Assert.Equal([new ResultsMissed("p", "silo-b", 8, 9)], missed);
    }

    private sealed class FakeLog(string origin, int capacity) : IResultLogGrain
    {
        public RecentResultsLog Log { get; } = new(capacity);

        public Task<ResultLogPage> ReadAsync(long after, int max, TimeSpan wait)
        {
            var (first, batches, oldest, latest) = Log.Read(after, max);
            return Task.FromResult(new ResultLogPage(origin, oldest, latest, first, batches));
        }
    }
}
