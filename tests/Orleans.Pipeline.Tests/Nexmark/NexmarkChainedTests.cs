using Orleans.Pipeline.Client;
using Orleans.Pipeline.Testing.Nexmark;
using Orleans.Pipeline.Tests.Chaining;

namespace Orleans.Pipeline.Tests.Nexmark;

/// <summary>
/// q5 and q7 whole, as their two pipelines run in embedded mode: on a generated stream, the chained pipeline's
/// answer per window (the hottest auction with its bid count; the highest bid) equals a brute-force evaluation.
/// </summary>
public sealed class NexmarkChainedTests
{
    [Theory]
    [InlineData("q5", 31)]
    [InlineData("q7", 32)]
    public async Task A_two_stage_querys_answer_per_window_equals_a_brute_force_evaluation(string name, int seed)
    {
        var query = NexmarkQueries.All.Single(q => q.Name == name);
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.AddRange(query.Pipelines));
        var client = cluster.NewClient();
        // 200 events/s of event time: 12,000 events span 60 s: 6 tumbling windows of 10 s, 34 hopping ones.
        var bids = new NexmarkGenerator(new NexmarkConfig(EventsPerSecond: 200), seed).Take(12_000).OfType<NexmarkBid>().ToList();
        var events = bids.Select(query.ToEvent).ToList();
        foreach (var chunk in events.Chunk(500))
        {
            await client.PublishAsync(query.Pipeline.Name, chunk);
            await client.WaitUntilAppliedAsync();
        }

        // One bid on every partition far later: every window of the stream closes, upstream and downstream.
        var end = events.Max(e => e.TimeMs);
        var partitions = query.Pipeline.Partitions;
        var flush = Enumerable.Range(0, partitions)
            .Select(p => Enumerable.Range(0, 10_000).Select(i => $"flush-{i}").First(k => PipelineNames.PartitionOf(k, partitions) == p))
            .Select(k => new PipelineEvent(k, end + 60_000, new Dictionary<string, double> { ["price"] = 0 }));
        await client.PublishAsync(query.Pipeline.Name, flush);
        await client.WaitUntilAppliedAsync();

        var plan = new ChainPlan(query.Description, query.Pipeline, query.Downstream!, [], "price", _ => ChainInput.AllKey,
            v => name == "q5" ? v.Count : v.Max(),
            v => name == "q5"
                ? v.OrderByDescending(c => c.Value).ThenBy(c => c.Key, StringComparer.Ordinal).Take(1).Select(c => new ChainExpected([c.Value], [c.Key])).Single()
                : new ChainExpected([v.Max(c => c.Value)]));
        var expected = plan.BruteForce(events);
        Assert.True(expected.Count >= 5, $"only {expected.Count} windows");
        await ChainAssert.ResultsEqualAsync(plan, expected, key => client.QueryAsync(query.Downstream!.Name, key), 0, end);
    }
}
