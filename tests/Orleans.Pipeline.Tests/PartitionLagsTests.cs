using Orleans.Pipeline.Grains;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// The partition clock keys measure idleness by: it stands at the publishing time of what the partition applies while
/// items keep coming that waited, moves on with the wall clock only after the partition has been quiet for as long as
/// its latest item waited, and never leaves the bounds [now − hold, now].
/// </summary>
public sealed class PartitionLagsTests
{
    private const long Hold = 300_000;

    [Fact]
    public void Without_a_record_the_clock_is_the_wall_clock()
    {
        var lags = new PartitionLags();
        lags.Record("p", 1, 4, 1_000, 1_500);

        Assert.Equal(9_000, lags.IdleClock("p", 0, 9_000, Hold));
        Assert.Equal(9_000, lags.IdleClock("other", 1, 9_000, Hold));
    }

    [Fact]
    public void While_items_that_waited_keep_coming_the_clock_stands_at_their_publishing_time()
    {
        var lags = new PartitionLags();
        // Items published at 10 s and 10.5 s, each applied 8 s later.
        lags.Record("p", 0, 1, 10_000, 18_000);
        Assert.Equal(10_000, lags.IdleClock("p", 0, 18_000, Hold));
        Assert.Equal(10_000, lags.IdleClock("p", 0, 25_000, Hold)); // quiet for 7 s of an 8 s wait: still standing
        lags.Record("p", 0, 1, 10_500, 18_500);
        Assert.Equal(10_500, lags.IdleClock("p", 0, 18_500, Hold));
        Assert.Equal(8_000, lags.Of("p", 0));

        // Quiet for longer than the wait: nothing published later can still be on its way; the clock moves on.
        Assert.Equal(10_500 + 1_000, lags.IdleClock("p", 0, 18_500 + 8_000 + 1_000, Hold));
    }

    [Fact]
    public void A_partition_that_keeps_up_runs_on_the_wall_clock_less_twice_its_small_wait()
    {
        var lags = new PartitionLags();
        lags.Record("p", 0, 1, 50_000, 50_020);

        // It stood at 50,000 for the 20 ms its item waited, then moved with the wall clock.
        Assert.Equal(60_000 - 40, lags.IdleClock("p", 0, 60_000, Hold));
    }

    [Fact]
    public void The_clock_is_held_back_by_at_most_the_hold_and_never_runs_ahead()
    {
        var lags = new PartitionLags();
        lags.Record("p", 0, 1, 1_000, 1_000_000); // a producer whose clock runs far behind
        Assert.Equal(1_000_000 - Hold, lags.IdleClock("p", 0, 1_000_000, Hold));

        lags.Record("p", 0, 1, 2_000_000, 1_000_000); // a producer whose clock runs ahead
        Assert.Equal(1_000_500, lags.IdleClock("p", 0, 1_000_500, Hold));
    }
}
