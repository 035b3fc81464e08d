namespace Orleans.Pipeline.Testing.Nexmark;

/// <summary>
/// Settings of the Nexmark event stream. The defaults are the benchmark's usual ones: half of the bids on a hot
/// auction, three in four by a hot bidder and three in four auctions by a hot seller; bids on the last 100 auctions;
/// bidders and sellers among the last 1,000 people.
/// </summary>
/// <param name="FirstEventTimeMs">Event time of the first event (Unix milliseconds).</param>
/// <param name="EventsPerSecond">Event-time rate: event <c>n</c> happens at <c>FirstEventTimeMs + n × 1000 / EventsPerSecond</c>.</param>
public sealed record NexmarkConfig(
    long FirstEventTimeMs = 1_767_225_600_000,
    int EventsPerSecond = 10_000,
    int HotAuctionRatio = 2,
    int HotBiddersRatio = 4,
    int HotSellersRatio = 4,
    int NumInFlightAuctions = 100,
    int NumActivePeople = 1_000);

/// <summary>A Nexmark event: a new person, a new auction, or a bid.</summary>
public abstract record NexmarkEvent(long EventNumber, long TimeMs);

/// <summary>A person joins (a seller or bidder to be).</summary>
public sealed record NexmarkPerson(long EventNumber, long TimeMs, long Id, int State, int City) : NexmarkEvent(EventNumber, TimeMs);

/// <summary>An auction opens: its seller, category, initial bid and reserve (cents) and when it expires.</summary>
public sealed record NexmarkAuction(long EventNumber, long TimeMs, long Id, long Seller, int Category, long InitialBid, long Reserve, long ExpiresMs)
    : NexmarkEvent(EventNumber, TimeMs);

/// <summary>A bid of <see cref="Price"/> cents by <see cref="Bidder"/> on <see cref="Auction"/>.</summary>
public sealed record NexmarkBid(long EventNumber, long TimeMs, long Auction, long Bidder, long Price) : NexmarkEvent(EventNumber, TimeMs);

/// <summary>
/// The Nexmark event stream, seeded: of every 50 events one is a new person, three are new auctions and 46 are bids,
/// in that order within each group of 50; ids are dense from 1000. A bid goes to a hot auction (the first of the last
/// hundred auctions opened) with probability 1 − 1/<see cref="NexmarkConfig.HotAuctionRatio"/>, else to a random
/// auction among the last <see cref="NexmarkConfig.NumInFlightAuctions"/> (plus a few not opened yet); its bidder is a
/// hot one (the second of the last hundred people) with probability 1 − 1/<see cref="NexmarkConfig.HotBiddersRatio"/>,
/// else a random one of the last <see cref="NexmarkConfig.NumActivePeople"/> (plus a few not joined yet). Prices are
/// log-uniform between 1 and 10^6 dollars, in cents. Event times follow the event numbers at the configured rate.
/// </summary>
public sealed class NexmarkGenerator(NexmarkConfig config, int seed)
{
    /// <summary>Of every <see cref="Group"/> events: persons, auctions, bids.</summary>
    public const int PersonProportion = 1, AuctionProportion = 3, BidProportion = 46, Group = 50;

    /// <summary>The first person's and the first auction's id.</summary>
    public const long FirstPersonId = 1_000, FirstAuctionId = 1_000;

    private const int Categories = 5, FirstCategory = 10, States = 6, Cities = 10;

    /// <summary>Hot auctions, bidders and sellers are one in this many.</summary>
    private const int HotRatio = 100;

    /// <summary>Ids of people and auctions not created yet that a bid or an auction may name.</summary>
    private const int IdLead = 10;

    private readonly Random _random = new(seed);
    private long _next;

    public NexmarkConfig Config => config;

    /// <summary>The next <paramref name="count"/> events.</summary>
    public IEnumerable<NexmarkEvent> Take(long count)
    {
        for (long i = 0; i < count; i++) yield return Next();
    }

    /// <summary>The next event.</summary>
    public NexmarkEvent Next()
    {
        var n = _next++;
        var time = config.FirstEventTimeMs + n * 1_000 / config.EventsPerSecond;
        var offset = n % Group;
        if (offset < PersonProportion)
            return new NexmarkPerson(n, time, FirstPersonId + LastPerson(n), _random.Next(States), _random.Next(Cities));
        if (offset < PersonProportion + AuctionProportion)
        {
            var seller = _random.Next(config.HotSellersRatio) > 0 ? LastPerson(n) / HotRatio * HotRatio : RandomPerson(n);
            var initial = Price();
            // An auction lasts about as long as it takes to open the next NumInFlightAuctions auctions.
            var horizonMs = (long)config.NumInFlightAuctions * Group / AuctionProportion * 1_000 / config.EventsPerSecond;
            return new NexmarkAuction(n, time, FirstAuctionId + LastAuction(n), FirstPersonId + seller, FirstCategory + _random.Next(Categories),
                initial, initial + Price(), time + 1 + _random.NextInt64(Math.Max(2 * horizonMs, 1)));
        }

        var auction = _random.Next(config.HotAuctionRatio) > 0 ? LastAuction(n) / HotRatio * HotRatio : RandomAuction(n);
        var bidder = _random.Next(config.HotBiddersRatio) > 0 ? LastPerson(n) / HotRatio * HotRatio + 1 : RandomPerson(n);
        return new NexmarkBid(n, time, FirstAuctionId + auction, FirstPersonId + bidder, Price());
    }

    /// <summary>Log-uniform between 100 and 10^8 cents.</summary>
    private long Price() => (long)Math.Round(Math.Pow(10, _random.NextDouble() * 6) * 100);

    /// <summary>The last person created by event <paramref name="n"/> (0-based; the one it creates if it is a person).</summary>
    internal static long LastPerson(long n)
    {
        var (group, offset) = (n / Group, n % Group);
        return group * PersonProportion + Math.Min(offset, PersonProportion - 1);
    }

    /// <summary>The last auction opened by event <paramref name="n"/> (0-based; the one it opens if it is an auction).</summary>
    internal static long LastAuction(long n)
    {
        var (group, offset) = (n / Group, n % Group);
        if (offset < PersonProportion) return group * AuctionProportion - 1; // the last of the previous group (−1 before any)
        return group * AuctionProportion + Math.Min(offset - PersonProportion, AuctionProportion - 1);
    }

    private long RandomPerson(long n)
    {
        var people = LastPerson(n) + 1;
        var active = Math.Min(people, config.NumActivePeople);
        return people - active + _random.NextInt64(active + IdLead);
    }

    private long RandomAuction(long n)
    {
        var last = Math.Max(LastAuction(n), 0);
        var first = Math.Max(last - config.NumInFlightAuctions, 0);
        return first + _random.NextInt64(last - first + 1 + IdLead);
    }
}
