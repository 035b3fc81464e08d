using Orleans.Pipeline.Testing.Nexmark;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Tests.Nexmark;

/// <summary>
/// The Nexmark generator follows the benchmark's stream (proportions, ids, hot auctions and bidders, event times), and
/// each query's pipeline, run by the windowing engine over a generated stream, equals a brute-force evaluation of the
/// query over the same bids.
/// </summary>
public sealed class NexmarkTests
{
    private static List<NexmarkEvent> Stream(int seed, long count, int rate = 10_000) =>
        new NexmarkGenerator(new NexmarkConfig(EventsPerSecond: rate), seed).Take(count).ToList();

    [Fact]
    public void Every_50_events_are_one_person_three_auctions_and_46_bids_with_dense_ids_and_times_at_the_rate()
    {
        var events = Stream(1, 5_000);

        foreach (var group in events.Chunk(50))
        {
            Assert.IsType<NexmarkPerson>(group[0]);
            Assert.All(group[1..4], e => Assert.IsType<NexmarkAuction>(e));
            Assert.All(group[4..], e => Assert.IsType<NexmarkBid>(e));
        }

        Assert.Equal(Enumerable.Range(0, 100).Select(i => 1_000L + i), events.OfType<NexmarkPerson>().Select(p => p.Id));
        Assert.Equal(Enumerable.Range(0, 300).Select(i => 1_000L + i), events.OfType<NexmarkAuction>().Select(a => a.Id));
        // 10,000 events per second of event time: event n at n/10 ms.
        Assert.Equal(events[0].TimeMs + 499, events[^1].TimeMs);
        Assert.True(events.Zip(events.Skip(1)).All(p => p.First.TimeMs <= p.Second.TimeMs), "event times go back");
        var auctions = events.OfType<NexmarkAuction>().ToList();
        Assert.All(auctions, a => Assert.InRange(a.Category, 10, 14));
        Assert.All(auctions, a => Assert.True(a.Reserve >= a.InitialBid && a.ExpiresMs > a.TimeMs, a.ToString()));
    }

    [Fact]
    public void About_half_the_bids_go_to_the_hot_auction_and_three_in_four_come_from_the_hot_bidder_of_their_time()
    {
        var bids = Stream(2, 200_000).OfType<NexmarkBid>().ToList();

        // Hot: the first auction of the current hundred, and the second person of the current hundred.
        var hotAuction = bids.Count(b => (b.Auction - NexmarkGenerator.FirstAuctionId) % 100 == 0 &&
            b.Auction - NexmarkGenerator.FirstAuctionId == NexmarkGenerator.LastAuction(b.EventNumber) / 100 * 100);
        var hotBidder = bids.Count(b => b.Bidder - NexmarkGenerator.FirstPersonId == NexmarkGenerator.LastPerson(b.EventNumber) / 100 * 100 + 1);
        Assert.InRange(hotAuction / (double)bids.Count, 0.49, 0.52); // 1/2, plus random picks that land on it
        Assert.InRange(hotBidder / (double)bids.Count, 0.74, 0.77);
        Assert.InRange(bids.Average(b => Math.Log10(b.Price / 100.0)), 2.9, 3.1); // log-uniform over six decades
    }

    [Fact]
    public void Bids_name_auctions_and_people_that_exist_or_come_at_most_ten_later()
    {
        var events = Stream(3, 100_000);
        long lastPerson = 0, lastAuction = 0;
        foreach (var e in events)
        {
            switch (e)
            {
                case NexmarkPerson p: lastPerson = p.Id; break;
                case NexmarkAuction a:
                    lastAuction = a.Id;
                    Assert.InRange(a.Seller, NexmarkGenerator.FirstPersonId, lastPerson + 10);
                    break;
                case NexmarkBid b:
                    Assert.InRange(b.Auction, Math.Max(NexmarkGenerator.FirstAuctionId, lastAuction - 100), lastAuction + 10);
                    Assert.InRange(b.Bidder, Math.Max(NexmarkGenerator.FirstPersonId, lastPerson - 1_000), lastPerson + 10);
                    break;
            }
        }
    }

    [Fact]
    public void A_seed_gives_the_same_stream_every_time_and_another_seed_another()
    {
        Assert.Equal(Stream(7, 2_000), Stream(7, 2_000));
        Assert.NotEqual(Stream(7, 2_000), Stream(8, 2_000));
    }

    public static TheoryData<string, int> Queries() => new()
    {
        { "q0", 11 }, { "q5", 12 }, { "q7", 13 }, { "q11", 14 }, { "q12", 15 },
        { "q0", 21 }, { "q5", 22 }, { "q7", 23 }, { "q11", 24 }, { "q12", 25 },
    };

    [Theory]
    [MemberData(nameof(Queries))]
    public void A_querys_pipeline_over_a_generated_stream_equals_a_brute_force_evaluation_of_the_query(string name, int seed)
    {
        var query = NexmarkQueries.All.Single(q => q.Name == name);
        // A slow event rate (200/s), so that 30,000 events span 150 s: many windows, and sessions that end.
        var bids = Stream(seed, 30_000, rate: 200).OfType<NexmarkBid>().ToList();
        var processingTime = query.Pipeline.Windowing.TimeMode == TimeMode.ProcessingTime;
        // Processing time: when the bid reached its key, here its event time plus a seeded delay, in arrival order.
        var random = new Random(seed);
        var arrivals = new long[bids.Count];
        for (long i = 0, at = 0; i < bids.Count; i++) arrivals[i] = at = Math.Max(at, bids[(int)i].TimeMs + random.Next(0, 3_000));

        var actual = new Dictionary<(string Key, long Start, long End), double>();
        var engines = new Dictionary<string, WindowEngine>(StringComparer.Ordinal);
        var output = new List<WindowResult>();
        var definition = query.Pipeline.Windowing;
        for (var i = 0; i < bids.Count; i++)
        {
            var e = query.ToEvent(bids[i]);
            if (!engines.TryGetValue(e.Key, out var engine)) engines[e.Key] = engine = new WindowEngine(definition);
            output.Clear();
            Assert.Equal(EventOutcome.Applied, engine.Process(e.TimeMs, engine.Fields.Select(f => e.Fields[f]).ToArray(), arrivals[i], output));
            Fold(actual, e.Key, output);
        }

        foreach (var (key, engine) in engines) Fold(actual, key, engine.Snapshot()); // windows still open at the end

        var expected = BruteForce(query, bids, arrivals);
        Assert.Equal(expected.Count, actual.Count);
        foreach (var (window, value) in expected)
            Assert.True(actual.TryGetValue(window, out var got) && got == value, $"{window}: expected {value}, got {(actual.TryGetValue(window, out var g) ? g : "none")}");
    }

    private static void Fold(Dictionary<(string, long, long), double> windows, string key, IEnumerable<WindowResult> results)
    {
        foreach (var r in results)
        {
            if (r.Kind == ResultKind.Retraction) windows.Remove((key, r.Start, r.End));
            else windows[(key, r.Start, r.End)] = r.Values[0];
        }
    }

    /// <summary>The query computed directly from its definition's words, without the engine.</summary>
    private static Dictionary<(string, long, long), double> BruteForce(NexmarkQuery query, List<NexmarkBid> bids, long[] arrivals)
    {
        var result = new Dictionary<(string, long, long), double>();
        var byKey = bids.Select((b, i) => (Key: query.KeyOf(b), b.Price, Time: query.Pipeline.Windowing.TimeMode == TimeMode.ProcessingTime ? arrivals[i] : b.TimeMs))
            .GroupBy(b => b.Key);
        switch (query.Name)
        {
            case "q0" or "q12": // count per 10 s tumbling window
                foreach (var b in bids.Select((b, i) => (Key: query.KeyOf(b), Time: query.Name == "q12" ? arrivals[i] : b.TimeMs)))
                {
                    var start = b.Time - b.Time % 10_000;
                    result[(b.Key, start, start + 10_000)] = result.GetValueOrDefault((b.Key, start, start + 10_000)) + 1;
                }

                break;
            case "q7": // first stage: highest price per auction per 10 s tumbling window
                foreach (var b in bids)
                {
                    var start = b.TimeMs - b.TimeMs % 10_000;
                    var window = (query.KeyOf(b), start, start + 10_000);
                    result[window] = Math.Max(result.GetValueOrDefault(window, double.MinValue), b.Price);
                }

                break;
            case "q5": // first stage: count per auction per window of 10 s starting every 2 s
                foreach (var b in bids)
                {
                    for (var start = b.TimeMs - b.TimeMs % 2_000; start > b.TimeMs - 10_000; start -= 2_000)
                        result[(query.KeyOf(b), start, start + 10_000)] = result.GetValueOrDefault((query.KeyOf(b), start, start + 10_000)) + 1;
                }

                break;
            case "q11": // a bidder's session ends when 10 s pass without a bid; it spans [first bid, last bid + 10 s)
                foreach (var key in byKey)
                {
                    var times = key.Select(b => b.Time).Order().ToList();
                    var first = times[0];
                    var count = 1;
                    for (var i = 1; i <= times.Count; i++)
                    {
                        if (i < times.Count && times[i] - times[i - 1] < 10_000)
                        {
                            count++;
                            continue;
                        }

                        result[(key.Key, first, times[i - 1] + 10_000)] = count;
                        if (i < times.Count) (first, count) = (times[i], 1);
                    }
                }

                break;
            default:
                throw new ArgumentException(query.Name);
        }

        return result;
    }
}
