using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Testing.Nexmark;

/// <summary>
/// The Nexmark queries as pipelines. A query's events are the bids, keyed by <see cref="NexmarkQuery.Key"/>, with
/// the field <c>price</c> (cents). q5 and q7 are two pipelines each: per auction, then a chained pipeline over all
/// auctions per window. Events come in event-time order, so no disorder is allowed for.
/// </summary>
public static class NexmarkQueries
{
    private const long TenSeconds = 10_000;

    /// <summary>
    /// q0, pass-through: every bid goes through publishing, its partition and its auction's key, and is counted in a
    /// 10 s window (a pipeline always aggregates; the count is the least it can do).
    /// </summary>
    public static readonly NexmarkQuery Q0 = new("q0", "pass-through (each bid counted in its auction's 10 s window)", NexmarkKey.Auction,
        new PipelineDefinition("nexmark-q0", new WindowingDefinition(WindowSpec.Tumbling(TenSeconds), [AggregationSpec.Count()])));

    /// <summary>
    /// q5, hot items: bids per auction in hopping windows of 10 s every 2 s, then the auction with the most bids in
    /// each window (a chained pipeline over all auctions: <c>top</c> 1, labelled with the auction).
    /// </summary>
    public static readonly NexmarkQuery Q5 = new("q5", "hot items: bids per auction, hopping 10 s every 2 s, then the top auction per window", NexmarkKey.Auction,
        PipelineBuilder.Named("nexmark-q5-auctions").Hopping(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(2)).Count().Build(),
        PipelineBuilder.Named("nexmark-q5").From("nexmark-q5-auctions", "all").Hopping(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(2))
            .Aggregate(AggregationSpec.Top("count", 1)).KeepClosedWindows(1_000).Build());

    /// <summary>q7, highest bid: the highest price per auction per 10 s tumbling window, then the highest over all auctions.</summary>
    public static readonly NexmarkQuery Q7 = new("q7", "highest bid: per auction, tumbling 10 s, then the highest per window", NexmarkKey.Auction,
        PipelineBuilder.Named("nexmark-q7-auctions").Tumbling(TimeSpan.FromSeconds(10)).Max("price").Build(),
        PipelineBuilder.Named("nexmark-q7").From("nexmark-q7-auctions", "all").Tumbling(TimeSpan.FromSeconds(10)).Max("max_price").KeepClosedWindows(1_000).Build());

    /// <summary>q11: bids per bidder per session (a gap of 10 s ends it).</summary>
    public static readonly NexmarkQuery Q11 = new("q11", "bids per bidder per session, gap 10 s", NexmarkKey.Bidder,
        new PipelineDefinition("nexmark-q11", new WindowingDefinition(WindowSpec.Session(TenSeconds), [AggregationSpec.Count()])));

    /// <summary>q12: bids per bidder per 10 s window of processing time.</summary>
    public static readonly NexmarkQuery Q12 = new("q12", "bids per bidder, tumbling 10 s of processing time", NexmarkKey.Bidder,
        new PipelineDefinition("nexmark-q12", new WindowingDefinition(WindowSpec.Tumbling(TenSeconds), [AggregationSpec.Count()], TimeMode.ProcessingTime)));

    /// <summary>Every query above.</summary>
    public static IReadOnlyList<NexmarkQuery> All { get; } = [Q0, Q5, Q7, Q11, Q12];
}

/// <summary>Which bid attribute keys a query.</summary>
public enum NexmarkKey
{
    Auction,
    Bidder,
}

/// <summary>
/// A Nexmark query as pipelines: its name, what it computes, how bids are keyed, the pipeline bids are published to,
/// and for two-stage queries the chained pipeline that reads it (the query's answer).
/// </summary>
public sealed record NexmarkQuery(string Name, string Description, NexmarkKey Key, PipelineDefinition Pipeline, PipelineDefinition? Downstream = null)
{
    /// <summary>Every pipeline the query runs.</summary>
    public IReadOnlyList<PipelineDefinition> Pipelines => Downstream is null ? [Pipeline] : [Pipeline, Downstream];

    /// <summary>The bid's key for this query.</summary>
    public string KeyOf(NexmarkBid bid) => (Key == NexmarkKey.Auction ? bid.Auction : bid.Bidder).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The bid as this query's event.</summary>
    public PipelineEvent ToEvent(NexmarkBid bid) =>
        new(KeyOf(bid), bid.TimeMs, new Dictionary<string, double>(1, StringComparer.Ordinal) { ["price"] = bid.Price });
}
