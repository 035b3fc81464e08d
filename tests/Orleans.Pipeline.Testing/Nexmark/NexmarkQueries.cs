using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Testing.Nexmark;

/// <summary>
/// The Nexmark queries that are one keyed window over the bids, as pipelines, and the first (per-auction) stage of
/// the two-stage ones. A query's events are the bids, keyed by <see cref="NexmarkQuery.Key"/>, with the field
/// <c>price</c> (cents). Events come in event-time order, so no disorder is allowed for.
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

    /// <summary>q5, first stage: bids per auction in hopping windows of 10 s every 2 s (the second stage takes the maximum per window).</summary>
    public static readonly NexmarkQuery Q5Auctions = new("q5 (stage 1)", "bids per auction, hopping 10 s every 2 s", NexmarkKey.Auction,
        new PipelineDefinition("nexmark-q5-auctions", new WindowingDefinition(WindowSpec.Hopping(TenSeconds, 2_000), [AggregationSpec.Count()])));

    /// <summary>q7, first stage: the highest bid per auction per 10 s tumbling window (the second stage takes the maximum per window).</summary>
    public static readonly NexmarkQuery Q7Auctions = new("q7 (stage 1)", "highest bid per auction, tumbling 10 s", NexmarkKey.Auction,
        new PipelineDefinition("nexmark-q7-auctions", new WindowingDefinition(WindowSpec.Tumbling(TenSeconds), [AggregationSpec.Max("price")])));

    /// <summary>q11: bids per bidder per session (a gap of 10 s ends it).</summary>
    public static readonly NexmarkQuery Q11 = new("q11", "bids per bidder per session, gap 10 s", NexmarkKey.Bidder,
        new PipelineDefinition("nexmark-q11", new WindowingDefinition(WindowSpec.Session(TenSeconds), [AggregationSpec.Count()])));

    /// <summary>q12: bids per bidder per 10 s window of processing time.</summary>
    public static readonly NexmarkQuery Q12 = new("q12", "bids per bidder, tumbling 10 s of processing time", NexmarkKey.Bidder,
        new PipelineDefinition("nexmark-q12", new WindowingDefinition(WindowSpec.Tumbling(TenSeconds), [AggregationSpec.Count()], TimeMode.ProcessingTime)));

    /// <summary>Every query above.</summary>
    public static IReadOnlyList<NexmarkQuery> All { get; } = [Q0, Q5Auctions, Q7Auctions, Q11, Q12];
}

/// <summary>Which bid attribute keys a query.</summary>
public enum NexmarkKey
{
    Auction,
    Bidder,
}

/// <summary>A Nexmark query as a pipeline: its name, what it computes, how bids are keyed, and the definition.</summary>
public sealed record NexmarkQuery(string Name, string Description, NexmarkKey Key, PipelineDefinition Pipeline)
{
    /// <summary>The bid's key for this query.</summary>
    public string KeyOf(NexmarkBid bid) => (Key == NexmarkKey.Auction ? bid.Auction : bid.Bidder).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The bid as this query's event.</summary>
    public PipelineEvent ToEvent(NexmarkBid bid) =>
        new(KeyOf(bid), bid.TimeMs, new Dictionary<string, double>(1, StringComparer.Ordinal) { ["price"] = bid.Price });
}
